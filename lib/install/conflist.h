// Editing conflists for egress-fence and judging whether a conf dir fences
// pods. Pure: works on file contents; the caller reads and writes the files.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "install/conf_dir.h"

namespace ef::install {

// Top-level conflist key where install records what it did. libcni reads only
// `name`, `cniVersion`, `disableCheck` and `plugins` from a list and ignores
// the rest, so the runtime never sees it.
//   owned:   {"mode": "owned", "file": "<primary file>", "digest": "sha256:<hex>"}
//   chained: {"mode": "chained", "original": "<the file's bytes before install>"}
inline constexpr std::string_view kSourceKey = "egress-fence.io/source";

enum class Mode { owned, chained };

// True for a plugin object whose `type` is "egress-fence".
bool is_fence_entry(const Json& plugin);

// The entry as install writes it: `entry` without `name` and `cniVersion`,
// which libcni sets from the list for every plugin anyway.
Json installed_entry(const Json& entry);

// What the primary CNI wrote: `list` without egress-fence entries and without
// the kSourceKey record.
Json primary_part(const Json& list);

// "sha256:<hex>" of primary_part(list) with keys sorted and no whitespace, so
// reformatting or reordering keys is no change but any value change is.
std::string primary_digest(const Json& list);

// Throws cni::Error{kInvalidConfig} when egress-fence cannot chain after
// `primary` (a cniVersion it does not speak): better to refuse at install
// than to fail every pod's ADD.
void check_chainable(const Network& primary);

// Bytes of 00-egress-fence.conflist: the primary's list (same name, cniVersion
// and other keys; a `.conf` wrapped) with any egress-fence entry replaced by
// `entry` appended last, and the source file and its digest recorded.
std::string render_owned(const Network& primary, const Json& entry);

// Bytes of the primary `.conflist` with `entry` inserted or replaced, last in
// the list, and the file's pre-install bytes recorded so uninstall can restore
// them. Throws cni::Error{kInvalidConfig} for a `.conf`/`.json` primary, which
// cannot hold a chain (owned mode wraps it instead).
std::string render_chained(const ConfFile& primary, const Json& entry);

// Bytes of `file` without egress-fence's chained entry: exactly the recorded
// pre-install bytes when the primary's part is unchanged since install, else
// the current list re-serialised without the entry and the record. nullopt
// when the file holds neither (nothing to undo) or does not parse.
std::optional<std::string> render_unchained(const ConfFile& file);

struct Verdict {
    bool fenced = false;
    std::string file;    // the file the runtime uses ("" if none)
    std::string reason;  // why not fenced, or what fences
};

// Whether pods get fenced with this conf dir: the config the runtime picks
// (first loadable, our own file included) must end with a valid egress-fence
// entry (equal to `expected_entry` when given), and an owned copy must still
// match the current primary (same file, same digest).
Verdict verify(const std::vector<ConfFile>& files, const std::optional<Json>& expected_entry);

}  // namespace ef::install
