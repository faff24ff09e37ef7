#include "plugin/verbs.h"

#include <algorithm>
#include <fstream>

#include "fence/compile.h"
#include "fence/diff.h"
#include "netns/netns.h"
#include "nft/nft.h"

namespace ef::plugin {
namespace {

using cni::Error;

// The netns a fenced pod's verb acts on: set, a netns, and not our own (a
// misconfigured runtime must never get the host fenced).
void require_pod_netns(const std::string& path) {
    if (path.empty())
        throw Error(cni::kInvalidEnvironment, "CNI_NETNS is not set",
                    "the runtime must pass the pod's network namespace path");
    if (!netns::is_netns(path))
        throw Error(cni::kNetnsUnusable, "CNI_NETNS " + path + " is not a network namespace",
                    "expected a path such as /var/run/netns/<name> or /proc/<pid>/ns/net");
    if (netns::is_current_netns(path))
        throw Error(cni::kNetnsUnusable, "CNI_NETNS " + path + " is the host's own network namespace",
                    "refusing to fence the host: the runtime passed the wrong namespace");
}

// The pod's interface, where the raw-frame chain hooks (DESIGN.md "Raw frames").
const std::string& pod_interface(const Invocation& in) {
    if (in.env.ifname.empty())
        throw Error(cni::kInvalidEnvironment, "CNI_IFNAME is not set",
                    "the runtime must name the pod's interface (kubelet's runtimes pass eth0)");
    return in.env.ifname;
}

// The UID the kernel shows for a socket owner the netns owner's user
// namespace cannot map (from_kuid_munged): /proc/sys/kernel/overflowuid.
uint32_t overflow_uid() {
    std::ifstream in("/proc/sys/kernel/overflowuid");
    uint32_t uid = 65534;
    if (!(in >> uid)) uid = 65534;
    return uid;
}

// In a netns a child user namespace owns (hostUsers: false), `meta skuid`
// shows UIDs as the pod sees them, which is what exemptUids mean; but every
// owner that namespace cannot map (any process outside the pod) shows as the
// overflow UID, so exempting that one would exempt them all (fail closed).
void check_exempt_uids_for_userns(const config::Profile& profile, const std::string& netns) {
    if (netns::owned_by_own_userns(netns)) return;
    const uint32_t overflow = overflow_uid();
    if (std::find(profile.exempt_uids.begin(), profile.exempt_uids.end(), overflow) == profile.exempt_uids.end())
        return;
    throw Error(cni::kPodSelection,
                "profile " + profile.name + " exempts UID " + std::to_string(overflow) +
                    ", the overflow UID, and this pod's netns is owned by a user namespace of its own (hostUsers: "
                    "false): there every socket owner that namespace cannot map shows as " +
                    std::to_string(overflow) + ", so the exemption would let them all out; refusing to fence with it",
                "run the proxy as another UID (exemptUids, or the proxy-UID annotation)");
}

// The pod's profile; its allow list stays in the config, not copied.
std::optional<config::ProfileRef> select(const Invocation& in) {
    auto profile = config::select_profile_ref(in.conf.plugin, in.pod);
    in.record->profile = profile ? profile->head.name : "";
    return profile;
}

std::string passthrough(const Invocation& in) {
    const nlohmann::json* prev = in.conf.prev_result ? &*in.conf.prev_result : nullptr;
    return cni::result_for_version(prev, in.conf.cni_version).dump();
}

}  // namespace

std::string cmd_add(const Invocation& in) {
    auto profile = select(in);
    if (!profile) {
        in.record->outcome = "unfenced";
        return passthrough(in);
    }
    if (!in.conf.prev_result)
        throw Error(cni::kInvalidConfig, "prevResult is missing: egress-fence must run after the primary CNI plugin",
                    "put egress-fence last in the conflist's plugins");
    require_pod_netns(in.env.netns);
    check_exempt_uids_for_userns(profile->head, in.env.netns);
    fence::Ruleset rs = fence::compile(profile->head, *profile->allow, in.pod, pod_interface(in));
    {
        netns::ScopedNetns inside(in.env.netns);
        nft::apply_ruleset(rs);
    }
    in.record->outcome = "fenced";
    return passthrough(in);
}

std::string cmd_del(const Invocation& in) {
    in.record->outcome = "removed";
    // The table dies with the netns: a netns that is gone (or never was) has
    // nothing left to remove.
    if (in.env.netns.empty() || !netns::is_netns(in.env.netns)) return "";
    if (netns::is_current_netns(in.env.netns))
        throw Error(cni::kNetnsUnusable, "CNI_NETNS " + in.env.netns + " is the host's own network namespace",
                    "refusing to touch the host's nftables");
    netns::ScopedNetns inside(in.env.netns);
    nft::delete_table();
    return "";
}

std::string cmd_check(const Invocation& in) {
    if (!in.conf.prev_result)
        throw Error(cni::kInvalidConfig, "prevResult is missing: CHECK needs the result of ADD",
                    "the runtime passes the cached ADD result as prevResult");
    auto profile = select(in);
    require_pod_netns(in.env.netns);
    // Compiled first: the read knows what to expect (nft::read_ruleset).
    std::optional<fence::Ruleset> expected;
    if (profile) expected = fence::compile(profile->head, *profile->allow, in.pod, pod_interface(in));
    std::optional<fence::Ruleset> actual;
    {
        netns::ScopedNetns inside(in.env.netns);
        actual = expected ? nft::read_ruleset(*expected) : nft::read_ruleset();
        // Warned, not failed: see nft::foreign_chain_warning.
        for (const auto& c : nft::foreign_base_chains()) in.record->warnings.push_back(nft::foreign_chain_warning(c));
    }
    in.record->outcome = "checked";
    if (!profile) {
        if (actual)
            throw Error(cni::kCheckMismatch, "the pod matches no selector but its netns holds table inet egress_fence",
                        "profile in the table: " + actual->meta.profile);
        return "";
    }
    if (!actual)
        throw Error(cni::kCheckMismatch, "the pod is not fenced: table inet egress_fence is missing",
                    "expected profile " + profile->head.name + "; re-create the pod or re-run ADD");
    auto diffs = fence::diff(*expected, *actual);
    if (diffs.empty()) return "";
    std::string details;
    for (const auto& d : diffs) details += d + "\n";
    details.pop_back();
    throw Error(cni::kCheckMismatch,
                "the fence differs from what the config demands (" + std::to_string(diffs.size()) + " difference" +
                    (diffs.size() == 1 ? "" : "s") + "): " + diffs.front(),
                details);
}

std::string cmd_status(const Invocation& in) {
    std::string reason;
    if (!nft::available(reason))
        throw Error(cni::kNotAvailable, "nf_tables does not answer on this node: " + reason,
                    "load the nf_tables module (modprobe nf_tables)");
    in.record->outcome = "ok";
    return "";
}

std::string cmd_gc(const Invocation& in) {
    // Every fence lives in its pod's netns and dies with it: there is nothing
    // on the host to collect. Say what was asked, for the log.
    in.record->outcome = in.conf.valid_attachments
                             ? "ok: nothing to collect (" + std::to_string(*in.conf.valid_attachments) +
                                   " valid attachments listed)"
                             : "ok: nothing to collect";
    return "";
}

}  // namespace ef::plugin
