// Which CNI config a runtime loads from a conf dir, decided the way libcni and
// containerd's go-cni do it, over file contents already read. Pure: no I/O.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace ef::install {

// Conflists are edited as ordered JSON so a rewritten file keeps its key order.
using Json = nlohmann::ordered_json;

// The file egress-fence owns in the conf dir. "00-e" sorts before the usual
// "05-cilium", "10-calico", "10-flannel", "10-kindnet" and "00-multus" files.
inline constexpr std::string_view kOwnedFile = "00-egress-fence.conflist";
inline constexpr std::string_view kPluginType = "egress-fence";

// One file of the conf dir: its name (no directory) and its bytes.
struct ConfFile {
    std::string name;
    std::string content;
};

// A network configuration as the runtime holds it: always a list; a `.conf` or
// `.json` file is wrapped into a one-plugin list with its `name` and `cniVersion`.
struct Network {
    std::string file;
    Json list;
    bool from_single_conf = false;
};

// A file the runtime would not use, and why.
struct Skipped {
    std::string file;
    std::string reason;
};

// True for names the runtime reads: extension `.conflist`, `.conf` or `.json`.
bool is_conf_name(std::string_view name);

// Parses one file as libcni would: a `.conflist` needs a string `name` and a
// non-empty `plugins` array whose entries each have a `type`; a `.conf`/`.json`
// needs a `type`. Returns nullopt with `why_not` set when the runtime skips it.
std::optional<Network> load_network(const ConfFile& file, std::string& why_not);

struct Discovery {
    std::optional<Network> chosen;  // the network the runtime uses; nullopt: none
    std::vector<Skipped> skipped;   // conf-named files before `chosen` that do not load
};

// The first loadable file in byte-wise name order among conf-named files.
// `files` may come in any order and may hold other names (ignored).
// With `include_owned` false, egress-fence's own file is passed over: that
// gives the primary CNI's config.
Discovery discover(std::vector<ConfFile> files, bool include_owned);

}  // namespace ef::install
