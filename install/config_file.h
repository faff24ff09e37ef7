// Loading an admin's config file for egress-fence-ctl: either the
// egress-fence entry alone or a whole conflist that contains it.
#pragma once

#include <string>

#include "config/config.h"

namespace ef::ctl {

// Reads and parses `path`; throws cni::Error (kIoFailure when unreadable,
// kDecodeFailure when not JSON, kInvalidConfig when no single entry is found).
nlohmann::json load_entry(const std::string& path);

// load_entry + config::validate; throws cni::Error{kInvalidConfig} listing
// every problem with its path.
config::PluginConfig load_config(const std::string& path);

}  // namespace ef::ctl
