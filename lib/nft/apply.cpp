// The kernel side of nft.h: apply, read back, delete, inspect.
#include <algorithm>
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
#include "nft/readback.h"
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

// The ruleset's generation (NFTA_GEN_ID): every commit in this netns moves
// it, so equal values around a read say no commit came in between, which the
// per-dump NLM_F_DUMP_INTR cannot say across several requests.
uint32_t generation(Socket& s) {
    std::vector<uint8_t> msgs;
    bool interrupted = false;
    if (int err = run(s, Request(s, NFT_MSG_GETGEN, NLM_F_ACK, NFPROTO_UNSPEC), msgs, interrupted))
        dump_failed("the ruleset generation", err);
    uint32_t id = 0;
    if (msgs.size() >= NLMSG_LENGTH(sizeof(nfgenmsg))) {
        const auto* nlh = reinterpret_cast<const nlmsghdr*>(msgs.data());
        for_each_attr(nlh, sizeof(nfgenmsg), [&](const nlattr* a) {
            if (mnl_attr_get_type(a) == NFTA_GEN_ID && mnl_attr_validate(a, MNL_TYPE_U32) == 0)
                id = ntohl(mnl_attr_get_u32(a));
        });
    }
    return id;
}

// Replies a receive buffer of `rcvbuf` bytes holds, each charged as an
// untrimmed NLMSG_GOODSIZE skb: the kernel answers a non-dump GETSETELEM
// element by element, one skb each, all before the request's ack, and a
// queue that overflows loses them and the ack (ENOBUFS).
size_t replies_that_fit(size_t rcvbuf) {
    constexpr size_t kReplyCharge = 4608;
    return std::max<size_t>(1, rcvbuf / kReplyCharge - 1);
}

// Whether the kernel's set `want.name` holds every element of `want`,
// exactly: each looked up with non-dump GETSETELEM requests, as many per
// request as the element list attribute and the receive buffer take.
bool holds_every_element(Socket& s, const fence::Set& want) {
    ElementWriter w(want);
    const size_t per_request = replies_that_fit(s.receive_buffer());
    std::vector<char> buf(ElementWriter::kMaxMessage + 4096);
    while (!w.done()) {
        nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buf.data(), NFT_MSG_GETSETELEM, kFamily, NLM_F_ACK, s.take_seq());
        mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, fence::kTableName);
        mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, want.name.c_str());
        const size_t first = w.next_index();
        w.fill(nlh, per_request);
        const size_t last = w.next_index();
        size_t next = first;
        bool same = true;
        const int err = s.request_many(nlh, [&](const nlmsghdr* reply) {
            same = same && next < last && reply_holds(want, want.elements[next], reply);
            ++next;
        });
        // ENOENT: an element is missing (the dump says which).
        if (err || !same || next != last) return false;
    }
    return true;
}

// Why a read is made: `read` takes everything as it is; `add` and `check`
// compare with the fence intended and read large sets as readback.h says.
enum class Purpose : uint8_t { read, add, check };

// A large set ADD checked by its count instead of its elements.
struct CountedSet {
    std::string name;
    uint32_t count;
};

struct ReadBack {
    std::optional<fence::Ruleset> rs;
    std::vector<CountedSet> counted;
    std::vector<KernelSet> kernel;  // what the kernel said of each set
};

// Test-only: read as on a kernel that reports no NFTA_SET_COUNT (before
// Linux 6.16), so that path is exercised on this one too.
bool set_count_hidden() {
    const char* v = std::getenv("EF_TEST_NO_SET_COUNT");
    return v && std::strcmp(v, "1") == 0;
}

const fence::Set* find_set(const fence::Ruleset* rs, const std::string& name) {
    if (!rs) return nullptr;
    for (const auto& set : rs->sets)
        if (set.name == name) return &set;
    return nullptr;
}

// One consistent read; rs nullopt when the table does not exist. Sets
// `interrupted` when the ruleset changed while reading. Each reply is
// decoded as it arrives: no dump is held whole.
ReadBack read_once(Socket& s, bool& interrupted, const fence::Ruleset* want, Purpose purpose) {
    const uint32_t gen = generation(s);
    MessageDecoder d(!set_count_hidden());
    ReadBack out;
    // Every family at once: tables inet and netdev egress_fence come in one
    // dump each of tables, counters and chains (the decoder keeps those two),
    // the tables first.
    constexpr uint16_t kAll = NFPROTO_UNSPEC;
    int err = run(s, Request(s, NFT_MSG_GETTABLE, NLM_F_DUMP, kAll), d, interrupted);
    if (err) dump_failed("the tables", err);
    if (!d.has_table()) return out;
    if ((err = run(s,
                   Request(s, NFT_MSG_GETOBJ, NLM_F_DUMP, kAll)
                       .str(NFTA_OBJ_TABLE, fence::kTableName)
                       .be32(NFTA_OBJ_TYPE, NFT_OBJECT_COUNTER),
                   d, interrupted)))
        dump_failed("the counters", err);
    if ((err = run(s, Request(s, NFT_MSG_GETSET, NLM_F_DUMP).str(NFTA_SET_TABLE, fence::kTableName), d, interrupted)))
        dump_failed("the sets", err);
    // The sets just read (their definitions and counts) say how to read their elements.
    std::vector<const fence::Set*> proven;
    const size_t n_sets = d.sets().size();
    for (size_t i = 0; i < n_sets; ++i) {
        const fence::Set& got = d.sets()[i];
        const KernelSet& kernel = d.kernel_sets()[i];
        const fence::Set* intended = find_set(want, got.name);
        const ElementRead how = purpose == Purpose::read
                                    ? ElementRead::dump
                                    : plan_elements(intended, got, kernel, purpose == Purpose::check);
        if (how == ElementRead::count) {
            out.counted.push_back({got.name, *kernel.count});
            continue;
        }
        if (how == ElementRead::lookup && *kernel.count == intended->elements.size() &&
            holds_every_element(s, *intended)) {
            proven.push_back(intended);
            continue;
        }
        if ((err = run(s,
                       Request(s, NFT_MSG_GETSETELEM, NLM_F_DUMP)
                           .str(NFTA_SET_ELEM_LIST_TABLE, fence::kTableName)
                           .str(NFTA_SET_ELEM_LIST_SET, got.name),
                       d, interrupted)))
            dump_failed(("the elements of set " + got.name).c_str(), err);
    }
    if ((err = run(s, Request(s, NFT_MSG_GETCHAIN, NLM_F_DUMP, kAll).str(NFTA_CHAIN_TABLE, fence::kTableName), d,
                   interrupted)))
        dump_failed("the chains", err);
    // One dump per family: filtered by table, the kernel's rule dump stops
    // after the first table of that name (nf_tables_dump_rules).
    for (uint16_t family : {kFamily, uint16_t{NFPROTO_NETDEV}})
        if ((err = run(s, Request(s, NFT_MSG_GETRULE, NLM_F_DUMP, family).str(NFTA_RULE_TABLE, fence::kTableName), d,
                       interrupted)))
            dump_failed(family == kFamily ? "the rules" : "the rules of table netdev egress_fence", err);
    if (generation(s) != gen) interrupted = true;
    out.kernel = d.kernel_sets();
    out.rs = d.finish();
    // Its count and a lookup of every intended element: the set is that one.
    for (const fence::Set* set : proven)
        for (auto& got : out.rs->sets)
            if (got.name == set->name) got.elements = set->elements;
    return out;
}

ReadBack read_on(Socket& s, const fence::Ruleset* want, Purpose purpose) {
    for (int attempt = 0; attempt < kReadAttempts; ++attempt) {
        bool interrupted = false;
        ReadBack rb = read_once(s, interrupted, want, purpose);
        if (!interrupted) return rb;
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

// `got` equals `want`, but for the elements of the sets in `counted`, which
// the kernel reported only by their number.
bool same_but_counted(const fence::Ruleset& want, const fence::Ruleset& got, const std::vector<CountedSet>& counted) {
    if (want.counters != got.counters || want.chains != got.chains || want.netdev != got.netdev ||
        want.sets.size() != got.sets.size())
        return false;
    for (size_t i = 0; i < want.sets.size(); ++i) {
        const fence::Set &w = want.sets[i], &g = got.sets[i];
        const bool by_count = std::any_of(counted.begin(), counted.end(),
                                          [&](const CountedSet& c) { return c.name == w.name; });
        if (w.name != g.name || w.key != g.key || w.interval != g.interval || w.size != g.size) return false;
        if (!by_count && w.elements != g.elements) return false;
    }
    return true;
}

// What ADD's read-back found that differs from `rs` ("" when nothing does):
// every object exactly, a set ADD counted by its number of elements, and
// the kind of backend of each set where the kernel names it.
std::string add_difference(const fence::Ruleset& rs, const ReadBack& rb) {
    const fence::Ruleset& got = *rb.rs;
    const std::vector<CountedSet>& counted = rb.counted;
    // Metadata is compared in the form the table can hold.
    if (got.meta != fit_metadata(rs.meta)) return "the table's metadata differs";
    for (const auto& k : rb.kernel)
        if (const fence::Set* sent = find_set(&rs, k.name))
            if (std::string why = backend_mismatch(*sent, k); !why.empty()) return why;
    for (const auto& c : counted) {
        const fence::Set* sent = find_set(&rs, c.name);
        if (sent && c.count != sent->elements.size())
            return "set " + c.name + " holds " + std::to_string(c.count) + " elements, " +
                   std::to_string(sent->elements.size()) + " were sent";
    }
    if (same_but_counted(rs, got, counted)) return "";
    // Named as CHECK names it, the counted sets' elements left out of both
    // (copies: this is the failure path).
    fence::Ruleset want = rs, have = got;
    have.meta = want.meta;
    for (const auto& c : counted)
        for (auto* r : {&want, &have})
            for (auto& set : r->sets)
                if (set.name == c.name) set.elements.clear();
    return first_difference(want, have);
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

// ADD's read-back on `s`: throws unless the kernel holds `rs`.
void verify_on(Socket& s, const fence::Ruleset& rs) {
    const ReadBack got = read_on(s, &rs, Purpose::add);
    if (!got.rs)
        throw cni::Error(cni::kNftRejected, "nf_tables accepted the fence but table inet egress_fence is missing");
    if (std::string why = add_difference(rs, got); !why.empty())
        throw cni::Error(cni::kNftRejected, "nf_tables accepted the fence but holds something else: " + why);
}

}  // namespace

namespace {

bool inject_failure() {
    const char* fail_env = std::getenv("EF_TEST_FAIL_BATCH");
    return fail_env && std::strcmp(fail_env, "1") == 0;
}

// Test-only (EF_TEST_DROP_ELEMENT=1): `rs` with one element of its largest
// set left out, the batch a kernel that silently lost one would have taken,
// so the read-back must catch it; nullopt otherwise.
std::optional<fence::Ruleset> one_element_short(const fence::Ruleset& rs) {
    const char* drop_env = std::getenv("EF_TEST_DROP_ELEMENT");
    if (!drop_env || std::strcmp(drop_env, "1") != 0) return std::nullopt;
    fence::Ruleset short_one = rs;
    auto largest = std::max_element(short_one.sets.begin(), short_one.sets.end(),
                                    [](const fence::Set& a, const fence::Set& b) {
                                        return a.elements.size() < b.elements.size();
                                    });
    if (largest != short_one.sets.end() && !largest->elements.empty()) largest->elements.pop_back();
    return short_one;
}

}  // namespace

void apply_ruleset(const fence::Ruleset& rs, const Merge& merge) {
    Socket s;
    bool inject = inject_failure();
    const std::optional<fence::Ruleset> short_one = one_element_short(rs);
    const fence::Ruleset& sent = short_one ? *short_one : rs;
    // A fresh pod has no fence yet: creating it frees nothing in the kernel,
    // so this process does not wait for a grace period when it closes the
    // socket. Either batch is one transaction.
    if (send_fence(s, sent, BatchMode::create, inject)) return verify_on(s, rs);
    if (!merge) {
        send_fence(s, sent, BatchMode::replace, inject);
        return verify_on(s, rs);
    }
    std::optional<fence::Ruleset> existing = read_on(s, nullptr, Purpose::read).rs;
    fence::Ruleset merged = existing ? merge(*existing) : rs;
    send_fence(s, merged, BatchMode::replace, inject);
    verify_on(s, merged);
}

void replace_ruleset(const fence::Ruleset& rs) {
    Socket s;
    send_fence(s, rs, BatchMode::replace, inject_failure());
    verify_on(s, rs);
}

void verify_applied(const fence::Ruleset& rs) {
    Socket s;
    verify_on(s, rs);
}

std::optional<fence::Ruleset> read_ruleset() {
    Socket s;
    return read_on(s, nullptr, Purpose::read).rs;
}

std::optional<fence::Ruleset> read_ruleset(const fence::Ruleset& expected) {
    Socket s;
    return read_on(s, &expected, Purpose::check).rs;
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
