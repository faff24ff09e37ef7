// The pieces of validate(), one per config object. Internal to lib/config.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "config/config.h"

namespace ef::config {

// `profiles.<name>`; problems are recorded, the returned value is only
// meaningful when none were.
Profile read_profile(const nlohmann::json& v, const std::string& name, const std::string& path,
                     std::vector<Problem>& problems);

}  // namespace ef::config
