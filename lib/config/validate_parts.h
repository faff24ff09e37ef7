// The pieces of validate(), one per config object. Internal to lib/config.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/json_read.h"

namespace ef::config {

// validate() of a document read by read_stdin_json(): every placeholder in
// an allow list takes the next entry `decoded` holds for its profile (moved
// out). The result and the problems are those of validate() on the document
// read_json() gives for the same text.
std::optional<PluginConfig> validate(const nlohmann::json& entry, std::vector<Problem>& problems,
                                     DecodedAllow* decoded);

// `profiles.<name>`; problems are recorded, the returned value is only
// meaningful when none were. `decoded`: the entries decoded for its allow
// list's placeholders, or nullptr.
Profile read_profile(const nlohmann::json& v, const std::string& name, const std::string& path,
                     std::vector<Problem>& problems, std::vector<AllowEntry>* decoded);

}  // namespace ef::config
