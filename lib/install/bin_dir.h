// The bin dir must be the runtime's (DESIGN.md "Installer" 7): the dir that
// already holds the primary chain's own plugins. A wrong one (a preset for
// another platform or release) would get a conflist that sorts first naming a
// plugin the runtime cannot find, and every pod on the node would fail.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "install/conf_dir.h"

namespace ef::install {

// Bin dirs of runtimes and platforms as they ship (the chart's presets and
// their older layouts, distribution packages), searched for the likely dir.
extern const std::vector<std::string> kKnownBinDirs;

// The plugin `type`s of `list`'s chain other than egress-fence, in chain
// order, each once. Delegates a plugin calls itself (Multus's, flannel's) are
// not in the chain and not listed.
std::vector<std::string> chain_plugin_types(const Json& list);

// Those of chain_plugin_types(list) with no executable regular file of that
// name in `bin_dir` (symlinks followed), in chain order. A type holding '/' is
// never found (libcni looks names up in its dirs, not paths).
std::vector<std::string> missing_plugins(const Json& list, const std::string& bin_dir);

// The first of `candidates` holding every name in `plugins` as an executable,
// or "" when none does (or `plugins` is empty).
std::string dir_holding(const std::vector<std::string>& plugins, const std::vector<std::string>& candidates);

// nullopt when `bin_dir` holds every plugin of `network`'s chain; else what
// to tell the admin: which plugins are missing, from which file, and where
// they are (dir_holding over kKnownBinDirs) or where each runtime and
// platform keeps them.
struct BinDirProblem {
    std::string msg;
    std::string details;
};
std::optional<BinDirProblem> bin_dir_problem(const Network& network, const std::string& bin_dir);

}  // namespace ef::install
