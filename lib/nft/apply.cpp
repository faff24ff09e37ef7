// The kernel side of nft.h: apply, read back, delete, inspect.
#include <cstdlib>
#include <cstring>
#include <iterator>

#include <arpa/inet.h>
#include <libnftnl/chain.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include "cni/error.h"
#include "fence/diff.h"
#include "nft/codec.h"
#include "nft/elements.h"
#include "nft/nft.h"
#include "nft/socket.h"

namespace ef::nft {
namespace {

constexpr int kReadAttempts = 3;

// A get/dump request for our table.
struct Request {
    std::vector<char> buf = std::vector<char>(4096);
    nlmsghdr* nlh;
    Request(Socket& s, uint16_t type, uint16_t flags, uint16_t family = kFamily)
        : nlh(nftnl_nlmsg_build_hdr(buf.data(), type, family, flags, s.take_seq())) {}
    Request& str(uint16_t attr, const std::string& v) {
        mnl_attr_put_strz(nlh, attr, v.c_str());
        return *this;
    }
    Request& be32(uint16_t attr, uint32_t v) {
        mnl_attr_put_u32(nlh, attr, htonl(v));
        return *this;
    }
};

int run(Socket& s, const Request& r, std::vector<uint8_t>& out, bool& interrupted) {
    return s.request(r.nlh, out, interrupted);
}

[[noreturn]] void dump_failed(const char* what, int err) {
    throw cni::Error(cni::kNetlinkFailure,
                     std::string("cannot read ") + what + " of table inet egress_fence: " + std::strerror(err),
                     "errno " + std::to_string(err));
}

// Hands every reply of a get/dump request to the decoder as it arrives.
int run(Socket& s, const Request& r, MessageDecoder& d, bool& interrupted) {
    return s.request(
        r.nlh, [&d](const nlmsghdr* nlh) { d.message(nlh); }, interrupted);
}

// Decodes table netdev egress_fence (counters, chains, rules) into `d`;
// nothing when it does not exist.
void read_netdev(Socket& s, MessageDecoder& d, bool& interrupted) {
    constexpr uint16_t kNetdev = NFPROTO_NETDEV;
    int err = run(s, Request(s, NFT_MSG_GETTABLE, NLM_F_ACK, kNetdev).str(NFTA_TABLE_NAME, fence::kTableName), d,
                  interrupted);
    if (err == ENOENT) return;
    if (err) dump_failed("table netdev egress_fence", err);
    if ((err = run(s,
                   Request(s, NFT_MSG_GETOBJ, NLM_F_DUMP, kNetdev)
                       .str(NFTA_OBJ_TABLE, fence::kTableName)
                       .be32(NFTA_OBJ_TYPE, NFT_OBJECT_COUNTER),
                   d, interrupted)))
        dump_failed("the counters of table netdev egress_fence", err);
    if ((err = run(s, Request(s, NFT_MSG_GETCHAIN, NLM_F_DUMP, kNetdev).str(NFTA_CHAIN_TABLE, fence::kTableName), d,
                   interrupted)))
        dump_failed("the chains of table netdev egress_fence", err);
    if ((err = run(s, Request(s, NFT_MSG_GETRULE, NLM_F_DUMP, kNetdev).str(NFTA_RULE_TABLE, fence::kTableName), d,
                   interrupted)))
        dump_failed("the rules of table netdev egress_fence", err);
}

// One consistent read; nullopt when the table does not exist. Sets
// `interrupted` when the ruleset changed while dumping. Each reply is
// decoded as it arrives: no dump is held whole.
std::optional<fence::Ruleset> read_once(Socket& s, bool& interrupted) {
    MessageDecoder d;
    int err = run(s, Request(s, NFT_MSG_GETTABLE, NLM_F_ACK).str(NFTA_TABLE_NAME, fence::kTableName), d, interrupted);
    if (err == ENOENT) return std::nullopt;
    if (err) dump_failed("the table", err);
    if ((err = run(s,
                   Request(s, NFT_MSG_GETOBJ, NLM_F_DUMP)
                       .str(NFTA_OBJ_TABLE, fence::kTableName)
                       .be32(NFTA_OBJ_TYPE, NFT_OBJECT_COUNTER),
                   d, interrupted)))
        dump_failed("the counters", err);
    if ((err = run(s, Request(s, NFT_MSG_GETSET, NLM_F_DUMP).str(NFTA_SET_TABLE, fence::kTableName), d, interrupted)))
        dump_failed("the sets", err);
    // Set names come from the sets just read.
    for (const auto& set : d.set_names())
        if ((err = run(s,
                       Request(s, NFT_MSG_GETSETELEM, NLM_F_DUMP)
                           .str(NFTA_SET_ELEM_LIST_TABLE, fence::kTableName)
                           .str(NFTA_SET_ELEM_LIST_SET, set),
                       d, interrupted)))
            dump_failed(("the elements of set " + set).c_str(), err);
    if ((err = run(s, Request(s, NFT_MSG_GETCHAIN, NLM_F_DUMP).str(NFTA_CHAIN_TABLE, fence::kTableName), d,
                   interrupted)))
        dump_failed("the chains", err);
    if ((err = run(s, Request(s, NFT_MSG_GETRULE, NLM_F_DUMP).str(NFTA_RULE_TABLE, fence::kTableName), d, interrupted)))
        dump_failed("the rules", err);
    read_netdev(s, d, interrupted);
    return d.finish();
}

std::optional<fence::Ruleset> read_on(Socket& s) {
    for (int attempt = 0; attempt < kReadAttempts; ++attempt) {
        bool interrupted = false;
        auto rs = read_once(s, interrupted);
        if (!interrupted) return rs;
    }
    throw cni::Error(cni::kTryAgain, "the nf_tables ruleset kept changing while reading table inet egress_fence");
}

}  // namespace

namespace {

// The first of CHECK's differences, for the read-back error.
std::string first_difference(const fence::Ruleset& want, const fence::Ruleset& got) {
    auto d = fence::diff(want, got);
    return d.empty() ? "the tables differ" : d.front();
}

// Sends the fence in one batch. Returns false (nothing changed) when `mode`
// is create and a table already exists; throws when the kernel refuses.
bool send_fence(Socket& s, const fence::Ruleset& rs, BatchMode mode, bool inject) {
    BatchLabels labels;
    uint32_t first = s.take_seq(0);
    std::vector<uint8_t> batch = encode_batch_labeled(rs, first, labels, inject, mode);
    s.take_seq(static_cast<uint32_t>(labels.size()));
    // Every message but BEGIN and END asks for an ack.
    BatchError e = s.send_batch(batch, first, labels.size() - 2);
    if (!e.error) return true;
    size_t index = e.seq - first;
    std::string what = index < labels.size() ? labels[index] : "the batch";
    if (mode == BatchMode::create && e.error == EEXIST && what.starts_with("table ")) return false;
    if (what.starts_with("elements of set ") && e.bad_attr_offset) {
        // The kernel says which element it refused: name it.
        for (size_t off = 0; off + sizeof(nlmsghdr) <= batch.size();) {
            const auto* nlh = reinterpret_cast<const nlmsghdr*>(batch.data() + off);
            if (nlh->nlmsg_len < sizeof(nlmsghdr) || nlh->nlmsg_len > batch.size() - off) break;
            if (nlh->nlmsg_seq == e.seq) {
                if (std::string el = element_at(rs, nlh, e.bad_attr_offset); !el.empty()) what += ", element " + el;
                break;
            }
            off += NLMSG_ALIGN(nlh->nlmsg_len);
        }
    }
    std::string hint;
    if (what.starts_with("chain egress_") && what.find("of table netdev") != std::string::npos) {
        if (e.error == EOPNOTSUPP)
            hint = "; this kernel has no netdev egress hook (needs Linux 5.16+ with CONFIG_NETFILTER_EGRESS)";
        if (e.error == ENOENT) hint = "; CNI_IFNAME names no interface in the pod's netns";
    }
    throw cni::Error(cni::kNftRejected,
                     "nf_tables rejected the fence: " + std::string(std::strerror(e.error)) + " while adding " + what,
                     "errno " + std::to_string(e.error) + (e.message.empty() ? "" : "; kernel: " + e.message) + hint);
}

}  // namespace

namespace {

bool inject_failure() {
    const char* fail_env = std::getenv("EF_TEST_FAIL_BATCH");
    return fail_env && std::strcmp(fail_env, "1") == 0;
}

void verify(Socket& s, const fence::Ruleset& rs);

}  // namespace

void apply_ruleset(const fence::Ruleset& rs, const Merge& merge) {
    Socket s;
    bool inject = inject_failure();
    // A fresh pod has no fence yet: creating it frees nothing in the kernel,
    // so this process does not wait for a grace period when it closes the
    // socket. Either batch is one transaction.
    if (send_fence(s, rs, BatchMode::create, inject)) return verify(s, rs);
    if (!merge) {
        send_fence(s, rs, BatchMode::replace, inject);
        return verify(s, rs);
    }
    std::optional<fence::Ruleset> existing = read_on(s);
    fence::Ruleset merged = existing ? merge(*existing) : rs;
    send_fence(s, merged, BatchMode::replace, inject);
    verify(s, merged);
}

void replace_ruleset(const fence::Ruleset& rs) {
    Socket s;
    send_fence(s, rs, BatchMode::replace, inject_failure());
    verify(s, rs);
}

namespace {

void verify(Socket& s, const fence::Ruleset& rs) {
    std::optional<fence::Ruleset> got = read_on(s);
    if (!got)
        throw cni::Error(cni::kNftRejected, "nf_tables accepted the fence but table inet egress_fence is missing");
    // Metadata is compared in the form the table can hold; no copy of `rs`
    // (a large allow list would double the peak memory).
    bool meta_ok = got->meta == fit_metadata(rs.meta);
    got->meta = rs.meta;
    if (!meta_ok || !(*got == rs))
        throw cni::Error(cni::kNftRejected,
                         "nf_tables accepted the fence but holds something else: " +
                             (meta_ok ? first_difference(rs, *got) : "the table's metadata differs"));
}

}  // namespace

std::optional<fence::Ruleset> read_ruleset() {
    Socket s;
    return read_on(s);
}

namespace {

bool table_exists(Socket& s, uint16_t family) {
    std::vector<uint8_t> msgs;
    bool interrupted = false;
    int err = run(s, Request(s, NFT_MSG_GETTABLE, NLM_F_ACK, family).str(NFTA_TABLE_NAME, fence::kTableName), msgs,
                  interrupted);
    if (err && err != ENOENT)
        throw cni::Error(cni::kNetlinkFailure, std::string("cannot look up table egress_fence: ") + std::strerror(err));
    return err == 0;
}

}  // namespace

// Both tables in one transaction (one grace-period wait at close, not two).
bool delete_table() {
    Socket s;
    if (!table_exists(s, kFamily) && !table_exists(s, NFPROTO_NETDEV)) return false;
    BatchLabels labels;
    uint32_t first = s.take_seq(0);
    std::vector<uint8_t> batch = encode_delete_batch(first, labels);
    s.take_seq(static_cast<uint32_t>(labels.size()));
    BatchError e = s.send_batch(batch, first, labels.size() - 2);
    if (e.error) {
        size_t index = e.seq - first;
        std::string what = index < labels.size() ? labels[index] : "the batch";
        throw cni::Error(cni::kNftRejected,
                         "cannot delete the fence: " + std::string(std::strerror(e.error)) + " at " + what,
                         "errno " + std::to_string(e.error));
    }
    return true;
}

namespace {

const char* family_name(uint8_t f) {
    switch (f) {
        case NFPROTO_IPV4: return "ip";
        case NFPROTO_IPV6: return "ip6";
        case NFPROTO_INET: return "inet";
        case NFPROTO_ARP: return "arp";
        case NFPROTO_BRIDGE: return "bridge";
        case NFPROTO_NETDEV: return "netdev";
        default: return "unknown";
    }
}

// "output" / "forward" for the hooks CHECK cares about, else nullptr.
const char* egress_hook(uint8_t family, uint32_t hook) {
    if (family == NFPROTO_ARP) return hook == 1 ? "output" : hook == 2 ? "forward" : nullptr;
    if (family == NFPROTO_NETDEV) return nullptr;
    return hook == NF_INET_LOCAL_OUT ? "output" : hook == NF_INET_FORWARD ? "forward" : nullptr;
}

}  // namespace

std::vector<ForeignChain> foreign_base_chains() {
    Socket s;
    std::vector<uint8_t> msgs;
    bool interrupted = false;
    if (int err = run(s, Request(s, NFT_MSG_GETCHAIN, NLM_F_DUMP, NFPROTO_UNSPEC), msgs, interrupted))
        throw cni::Error(cni::kNetlinkFailure, std::string("cannot list chains: ") + std::strerror(err));
    std::vector<ForeignChain> out;
    const auto* nlh = reinterpret_cast<const nlmsghdr*>(msgs.data());
    int left = static_cast<int>(msgs.size());
    for (; mnl_nlmsg_ok(nlh, left); nlh = mnl_nlmsg_next(nlh, &left)) {
        ChainPtr c(nftnl_chain_alloc());
        if (nftnl_chain_nlmsg_parse(nlh, c.get()) < 0 || !nftnl_chain_is_set(c.get(), NFTNL_CHAIN_HOOKNUM)) continue;
        auto family = static_cast<uint8_t>(nftnl_chain_get_u32(c.get(), NFTNL_CHAIN_FAMILY));
        const char* table = nftnl_chain_get_str(c.get(), NFTNL_CHAIN_TABLE);
        const char* name = nftnl_chain_get_str(c.get(), NFTNL_CHAIN_NAME);
        const char* hook = egress_hook(family, nftnl_chain_get_u32(c.get(), NFTNL_CHAIN_HOOKNUM));
        if (!table || !name || !hook) continue;
        if (family == NFPROTO_INET && std::strcmp(table, fence::kTableName) == 0) continue;
        uint32_t policy = nftnl_chain_get_u32(c.get(), NFTNL_CHAIN_POLICY);
        out.push_back({family_name(family), table, name, hook, nftnl_chain_get_s32(c.get(), NFTNL_CHAIN_PRIO),
                       policy == NF_DROP ? "drop" : "accept"});
    }
    return out;
}

bool available(std::string& reason) {
    try {
        Socket s;
        std::vector<uint8_t> msgs;
        bool interrupted = false;
        int err = run(s, Request(s, NFT_MSG_GETGEN, NLM_F_ACK, NFPROTO_UNSPEC), msgs, interrupted);
        if (err) {
            reason = std::string("nf_tables does not answer: ") + std::strerror(err);
            return false;
        }
        return true;
    } catch (const cni::Error& e) {
        reason = e.msg;
        return false;
    }
}

}  // namespace ef::nft
