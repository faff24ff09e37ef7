// Putting the plugin into the CNI bin dir, upgrade-safe.
//
// The plugin ships as a bundle: `egress-fence` (a static launcher) and a dir
// `egress-fence.d/` with the real ELF, its loader and its libraries, so it never
// uses the host's. Installed, the bin dir holds
//   egress-fence                     the launcher (temp + rename)
//   egress-fence.d -> egress-fence.d-<digest>   symlink, swapped by rename
//   egress-fence.d-<digest>/         complete before the symlink points at it
// The launcher resolves the symlink once, so a plugin process runs one
// version's loader and libraries throughout, even during an upgrade.
#pragma once

#include <optional>
#include <string>

namespace ef::install {

inline constexpr std::string_view kPluginName = "egress-fence";
inline constexpr std::string_view kBundleSuffix = ".d";

// Copies the plugin at `plugin` (and its bundle `plugin + ".d"`, if present)
// into `bin_dir`. Never opens an installed file for writing; leaves the
// previous bundle version in place for processes that resolved it just before
// the swap and removes older ones. Returns whether anything changed.
bool install_plugin(const std::string& plugin, const std::string& bin_dir);

// Removes the launcher, the symlink and every bundle version. Returns whether anything existed.
bool uninstall_plugin(const std::string& bin_dir);

// Why the installed plugin cannot serve the runtime, or nullopt: runs it with
// CNI_COMMAND=VERSION and expects a CNI version object.
std::optional<std::string> plugin_problem(const std::string& bin_dir);

}  // namespace ef::install
