#include "plugin/verbs.h"

#include <algorithm>
#include <fstream>

#include <arpa/inet.h>

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

// An IPv6 "address/len" of prevResult as its on-link prefix (host bits
// cleared); nullopt for anything else, or a prefix no link has (shorter than
// /16: a neighbour could then be anywhere; /128: no neighbour at all).
std::optional<config::Cidr> onlink_prefix(const nlohmann::json& address) {
    if (!address.is_string()) return std::nullopt;
    const auto& text = address.get_ref<const std::string&>();
    auto slash = text.find('/');
    if (slash == std::string::npos) return std::nullopt;
    config::Cidr c{true, {}, 0};
    std::string addr = text.substr(0, slash), len = text.substr(slash + 1);
    if (inet_pton(AF_INET6, addr.c_str(), c.addr.data()) != 1 || len.empty() || len.size() > 3 ||
        len.find_first_not_of("0123456789") != std::string::npos)
        return std::nullopt;
    int prefix = std::stoi(len);
    if (prefix < 16 || prefix >= 128) return std::nullopt;
    c.prefix = static_cast<uint8_t>(prefix);
    for (size_t bit = c.prefix; bit < 128; ++bit) c.addr[bit / 8] &= static_cast<uint8_t>(~(0x80 >> (bit % 8)));
    return c;
}

// This attachment: the pod's interface and the IPv6 prefixes prevResult puts
// on it (an IP whose "interface" index names another interface, the host's
// end of a veth say, is not on it). Whatever prevResult holds that is not
// such a prefix only leaves neighbour discovery narrower.
fence::Attachment this_attachment(const Invocation& in) {
    fence::Attachment a{pod_interface(in), {}};
    const auto* prev = in.conf.prev_result ? &*in.conf.prev_result : nullptr;
    if (!prev || !prev->is_object() || !prev->contains("ips") || !(*prev)["ips"].is_array()) return a;
    const nlohmann::json* ifaces = prev->contains("interfaces") && (*prev)["interfaces"].is_array()
                                       ? &(*prev)["interfaces"]
                                       : nullptr;
    for (const auto& ip : (*prev)["ips"]) {
        if (!ip.is_object() || !ip.contains("address")) continue;
        if (ip.contains("interface")) {
            const auto& idx = ip["interface"];
            if (!ifaces || !idx.is_number_unsigned() || idx.get<size_t>() >= ifaces->size()) continue;
            const auto& iface = (*ifaces)[idx.get<size_t>()];
            if (!iface.is_object() || !iface.contains("name") || iface["name"] != a.ifname) continue;
        }
        if (auto c = onlink_prefix(ip["address"])) a.onlink6.push_back(*c);
    }
    return a;
}

// Whether the table's metadata names this container (nft::fit_metadata may
// have cut a long id, ending it in '~').
bool same_container(const std::string& stored, const std::string& id) {
    if (stored == id) return true;
    return stored.size() > 1 && stored.back() == '~' && id.starts_with(stored.substr(0, stored.size() - 1));
}

// The other attachments of the same pod a table read from the netns fences
// (none when the table belongs to another sandbox: a stale netns).
std::vector<fence::Attachment> other_attachments(const fence::Ruleset& existing, const Invocation& in) {
    std::vector<fence::Attachment> out;
    if (!same_container(existing.meta.container_id, in.pod.container_id)) return out;
    for (auto& a : fence::attachments_of(existing))
        if (a.ifname != in.env.ifname) out.push_back(std::move(a));
    return out;
}

// The fence without any attachment's part: what every attachment of a pod
// must agree on.
fence::Ruleset pod_wide(fence::Ruleset rs) {
    for (const auto& a : fence::attachments_of(rs)) rs = fence::without_attachment(std::move(rs), a.ifname);
    for (auto& c : rs.counters) c.packets = c.bytes = 0;
    return rs;
}

// ADD when the netns already holds a fence: this attachment's part joins the
// others' (a re-ADD of the only one replaces it). The other attachments'
// fence must be the one this config gives, or ADD fails: a second
// attachment never weakens, nor silently changes, the first one's fence.
// Counter values carry over.
fence::Ruleset with_other_attachments(const fence::Ruleset& mine, const fence::Ruleset& existing,
                                      const config::ProfileRef& profile, const Invocation& in) {
    std::vector<fence::Attachment> all = other_attachments(existing, in);
    if (all.empty()) return mine;
    std::string others;
    for (const auto& a : all) others += (others.empty() ? "" : ", ") + a.ifname;
    all.push_back(this_attachment(in));
    fence::Ruleset merged = fence::compile(profile.head, *profile.allow, in.pod, all);
    auto diffs = fence::diff(pod_wide(merged), pod_wide(existing));
    if (!diffs.empty())
        throw Error(cni::kAttachmentConflict,
                    "attachment " + in.env.ifname + " would fence this pod differently from attachment" +
                        (all.size() > 2 ? "s " : " ") + others + ", which fence it already (profile " +
                        existing.meta.profile + "): " + diffs.front(),
                    "give every attachment of a pod the same egress-fence config; the pod's fence is unchanged");
    for (auto& c : merged.counters)
        for (const auto& old : existing.counters)
            if (old.name == c.name) c.packets = old.packets, c.bytes = old.bytes;
    if (merged.netdev && existing.netdev)
        for (auto& c : merged.netdev->counters)
            for (const auto& old : existing.netdev->counters)
                if (old.name == c.name) c.packets = old.packets, c.bytes = old.bytes;
    return merged;
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
    fence::Ruleset rs = fence::compile(profile->head, *profile->allow, in.pod, {this_attachment(in)});
    {
        netns::ScopedNetns inside(in.env.netns);
        nft::apply_ruleset(rs, [&](const fence::Ruleset& existing) {
            return with_other_attachments(rs, existing, *profile, in);
        });
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
    // The fence is the pod's: DEL of one attachment takes away only that
    // attachment's part while another one is fenced, and the tables go with
    // the last one (or when they cannot be read: a teardown never fails).
    std::optional<fence::Ruleset> rs;
    try {
        rs = nft::read_ruleset();
    } catch (const Error& e) {
        in.record->warnings.push_back("the fence could not be read, so it is removed whole: " + e.msg);
        nft::delete_table();
        return "";
    }
    std::vector<fence::Attachment> fenced = rs ? fence::attachments_of(*rs) : std::vector<fence::Attachment>{};
    bool mine = std::any_of(fenced.begin(), fenced.end(), [&](const auto& a) { return a.ifname == in.env.ifname; });
    if (!mine && !fenced.empty()) {
        in.record->outcome = "kept: attachment " + (in.env.ifname.empty() ? "(CNI_IFNAME unset)" : in.env.ifname) +
                             " is not fenced, " + std::to_string(fenced.size()) + " other attachment(s) are";
        return "";
    }
    if (fenced.size() <= 1) {
        nft::delete_table();
        return "";
    }
    try {
        nft::replace_ruleset(fence::without_attachment(std::move(*rs), in.env.ifname));
        in.record->outcome = "removed attachment " + in.env.ifname;
    } catch (const Error& e) {
        // The other attachments stay fenced, this one's part too: the
        // interface goes away with the attachment anyway.
        in.record->warnings.push_back("attachment " + in.env.ifname + " stays in the fence: " + e.msg);
        in.record->outcome = "kept";
    }
    return "";
}

std::string cmd_check(const Invocation& in) {
    if (!in.conf.prev_result)
        throw Error(cni::kInvalidConfig, "prevResult is missing: CHECK needs the result of ADD",
                    "the runtime passes the cached ADD result as prevResult");
    auto profile = select(in);
    require_pod_netns(in.env.netns);
    std::optional<fence::Ruleset> actual;
    {
        netns::ScopedNetns inside(in.env.netns);
        actual = nft::read_ruleset();
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
    // The other attachments' parts as the table holds them (their own CHECK
    // compares those with their prevResult); this one's from this prevResult.
    std::vector<fence::Attachment> attachments = other_attachments(*actual, in);
    attachments.push_back(this_attachment(in));
    auto diffs = fence::diff(fence::compile(profile->head, *profile->allow, in.pod, attachments), *actual);
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
