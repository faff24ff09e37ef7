// fence::Ruleset -> one nf_tables netlink batch, expression for expression
// what nft 1.0.6 sends for the same ruleset text, so that `nft list` prints
// our table exactly as the rules written by hand.
#include <map>
#include <type_traits>

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_log.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <net/if_arp.h>

#include "cni/error.h"
#include "nft/codec.h"
#include "nft/elements.h"
#include "nft/nft.h"

namespace ef::nft {
namespace {

template <class... Ts>
struct overloaded : Ts... {
    using Ts::operator()...;
};
template <class... Ts>
overloaded(Ts...) -> overloaded<Ts...>;

// The sets of the batch by name: their id in the transaction, and whether
// they are interval sets (their lookups are encoded differently).
struct SetRef {
    uint32_t id;
    bool interval;
};
using SetIds = std::map<std::string, SetRef, std::less<>>;

[[noreturn]] void invalid(const std::string& what) {
    throw cni::Error(cni::kInternal, "cannot encode the fence: " + what);
}

// --- expressions ------------------------------------------------------------
class ExprSink {
  public:
    explicit ExprSink(nftnl_rule* r) : rule_(r) {}

    nftnl_expr* add(const char* name) {
        nftnl_expr* e = nftnl_expr_alloc(name);
        if (!e) throw cni::Error(cni::kInternal, std::string("out of memory for expression ") + name);
        nftnl_rule_add_expr(rule_, e);  // the rule owns it from here
        return e;
    }
    void meta(uint32_t key, uint32_t dreg) {
        nftnl_expr* e = add("meta");
        nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
        nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, dreg);
    }
    void cmp(uint32_t op, const void* data, uint32_t len) {
        nftnl_expr* e = add("cmp");
        nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
        nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
        nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
    }
    void cmp_u8(uint32_t op, uint8_t v) { cmp(op, &v, 1); }
    void payload(uint32_t base, uint32_t offset, uint32_t len, uint32_t dreg) {
        nftnl_expr* e = add("payload");
        nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, dreg);
        nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
        nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, offset);
        nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
    }
    void hton(uint32_t reg, uint32_t len, uint32_t size) {
        nftnl_expr* e = add("byteorder");
        nftnl_expr_set_u32(e, NFTNL_EXPR_BYTEORDER_SREG, reg);
        nftnl_expr_set_u32(e, NFTNL_EXPR_BYTEORDER_DREG, reg);
        nftnl_expr_set_u32(e, NFTNL_EXPR_BYTEORDER_OP, NFT_BYTEORDER_HTON);
        nftnl_expr_set_u32(e, NFTNL_EXPR_BYTEORDER_LEN, len);
        nftnl_expr_set_u32(e, NFTNL_EXPR_BYTEORDER_SIZE, size);
    }
    void lookup(const std::string& set, const SetIds& ids) {
        nftnl_expr* e = add("lookup");
        nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
        nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set.c_str());
        // The set is created in the same transaction: the kernel finds it by id.
        if (auto it = ids.find(set); it != ids.end()) nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SET_ID, it->second.id);
    }
    // nft's dependency for a match on the IPv4 or IPv6 header: emitted once
    // per rule for each family, before the first such match (`icmpv6 type
    // 135 ip6 hoplimit 255` checks the family once).
    void nfproto(uint8_t proto) {
        if (nfproto_ == proto) return;
        nfproto_ = proto;
        meta(NFT_META_NFPROTO, NFT_REG_1);
        cmp_u8(NFT_CMP_EQ, proto);
    }
    void ct(uint32_t key) {
        nftnl_expr* e = add("ct");
        nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, key);
        nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, NFT_REG_1);
    }
    // [bitwise reg 1 = (reg 1 & mask) ^ xor] on `len` bytes; nft names the
    // operation for a masked address, not for flags and marks.
    void bitwise(const void* mask, const void* xr, uint32_t len, bool with_op = false) {
        nftnl_expr* bw = add("bitwise");
        nftnl_expr_set_u32(bw, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
        nftnl_expr_set_u32(bw, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
        if (with_op) nftnl_expr_set_u32(bw, NFTNL_EXPR_BITWISE_OP, NFT_BITWISE_BOOL);
        nftnl_expr_set_u32(bw, NFTNL_EXPR_BITWISE_LEN, len);
        nftnl_expr_set(bw, NFTNL_EXPR_BITWISE_MASK, mask, len);
        nftnl_expr_set(bw, NFTNL_EXPR_BITWISE_XOR, xr, len);
    }
    void fib(uint32_t flags, uint32_t result) {
        nftnl_expr* e = add("fib");
        nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_DREG, NFT_REG_1);
        nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_RESULT, result);
        nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_FLAGS, flags);
    }
    void l4proto(uint8_t proto) {
        meta(NFT_META_L4PROTO, NFT_REG_1);
        cmp_u8(NFT_CMP_EQ, proto);
    }

  private:
    nftnl_rule* rule_;
    uint8_t nfproto_ = 0;
};

uint64_t seconds(fence::TimeUnit u) {
    switch (u) {
        case fence::TimeUnit::second: return 1;
        case fence::TimeUnit::minute: return 60;
        case fence::TimeUnit::hour: return 3600;
        case fence::TimeUnit::day: return 86400;
    }
    return 1;
}

// Where nft loads the destination address, and into which 32-bit registers
// the protocol and port of the concatenation go (they follow the address).
struct DaddrLayout {
    uint8_t nfproto;
    uint32_t offset, len;
    uint32_t proto_reg, port_reg;
};
DaddrLayout daddr_layout(fence::IpFamily f) {
    if (f == fence::IpFamily::ipv4) return {NFPROTO_IPV4, 16, 4, NFT_REG32_01, NFT_REG32_02};
    // 16 address bytes fill reg32 0..3; reg32 4 is spelled NFT_REG_2 by nft.
    return {NFPROTO_IPV6, 24, 16, NFT_REG_2, NFT_REG32_05};
}

// The destination address in register 1, cut to its first `mask_len` bits
// when that is not 0 (what nft sends for `ip daddr & 255.255.255.0`).
void add_daddr(ExprSink& x, fence::IpFamily f, uint8_t mask_len) {
    DaddrLayout l = daddr_layout(f);
    x.nfproto(l.nfproto);
    x.payload(NFT_PAYLOAD_NETWORK_HEADER, l.offset, l.len, NFT_REG_1);
    if (mask_len == 0) return;
    if (mask_len >= l.len * 8) invalid("address mask of " + std::to_string(mask_len) + " bits");
    uint8_t mask[16] = {}, zero[16] = {};
    for (size_t bit = 0; bit < mask_len; ++bit) mask[bit / 8] |= uint8_t(0x80 >> (bit % 8));
    x.bitwise(mask, zero, l.len, true);
}

// Interval sets keep the protocol converted the way nft converts it for
// them; hash sets take it as the meta expression loads it.
bool is_interval_set(const SetIds& ids, const std::string& set) {
    auto it = ids.find(set);
    return it == ids.end() || it->second.interval;
}

void ifname_cmp(ExprSink& x, uint32_t key, uint32_t op, const std::string& ifname) {
    char name[IFNAMSIZ] = {};
    if (ifname.size() >= IFNAMSIZ) invalid("interface name too long: " + ifname);
    ifname.copy(name, ifname.size());
    x.meta(key, NFT_REG_1);
    x.cmp(op, name, IFNAMSIZ);
}

// `ip6 saddr/daddr PREFIX` as nft sends it: a whole-byte prefix loads just
// its bytes; any other one loads the address and masks it.
void ip6_prefix(ExprSink& x, const fence::Ip6AddrPrefix& s) {
    if (s.addr.size() != 16 || s.len == 0 || s.len > 128) invalid("IPv6 prefix of " + std::to_string(s.len) + " bits");
    x.nfproto(NFPROTO_IPV6);
    const uint32_t offset = s.source ? 8 : 24;
    if (s.len % 8 == 0) {
        x.payload(NFT_PAYLOAD_NETWORK_HEADER, offset, s.len / 8, NFT_REG_1);
        x.cmp(NFT_CMP_EQ, s.addr.data(), s.len / 8);
        return;
    }
    uint8_t mask[16] = {}, zero[16] = {};
    for (size_t bit = 0; bit < s.len; ++bit) mask[bit / 8] |= uint8_t(0x80 >> (bit % 8));
    x.payload(NFT_PAYLOAD_NETWORK_HEADER, offset, 16, NFT_REG_1);
    x.bitwise(mask, zero, 16, true);
    x.cmp(NFT_CMP_EQ, s.addr.data(), 16);
}

void add_stmt(ExprSink& x, const fence::Stmt& stmt, const SetIds& ids) {
    std::visit(overloaded{
                   [&](const fence::OifnameEq& s) { ifname_cmp(x, NFT_META_OIFNAME, NFT_CMP_EQ, s.name); },
                   [&](const fence::OifnameNe& s) { ifname_cmp(x, NFT_META_OIFNAME, NFT_CMP_NEQ, s.name); },
                   [&](const fence::IifnameNe& s) { ifname_cmp(x, NFT_META_IIFNAME, NFT_CMP_NEQ, s.name); },
                   [&](const fence::SkuidAny&) {
                       const uint32_t lo = 0, hi = 0xffffffff;
                       x.meta(NFT_META_SKUID, NFT_REG_1);
                       x.hton(NFT_REG_1, 4, 4);
                       x.cmp(NFT_CMP_GTE, &lo, sizeof lo);
                       x.cmp(NFT_CMP_LTE, &hi, sizeof hi);
                   },
                   [&](const fence::FibSaddrNotLocal&) {
                       const uint32_t local = RTN_LOCAL;
                       x.fib(NFTA_FIB_F_SADDR, NFT_FIB_RESULT_ADDRTYPE);
                       x.cmp(NFT_CMP_NEQ, &local, sizeof local);
                   },
                   [&](const fence::FibSaddrIifOif& s) {
                       // The register holds the boolean as a u32 (nft compares all 4 bytes).
                       const uint32_t present = s.exists ? 1 : 0;
                       x.fib(NFTA_FIB_F_SADDR | NFTA_FIB_F_IIF | NFTA_FIB_F_PRESENT, NFT_FIB_RESULT_OIF);
                       x.cmp(NFT_CMP_EQ, &present, sizeof present);
                   },
                   [&](const fence::CtDirectionEq& s) {
                       x.ct(NFT_CT_DIRECTION);
                       x.cmp_u8(NFT_CMP_EQ, static_cast<uint8_t>(s.dir));
                   },
                   [&](const fence::CtMarkHas& s) {
                       const uint32_t zero = 0;
                       x.ct(NFT_CT_MARK);
                       x.bitwise(&s.bits, &zero, sizeof zero);
                       x.cmp(NFT_CMP_EQ, &s.bits, sizeof s.bits);
                   },
                   [&](const fence::CtMarkOr& s) {
                       const uint32_t keep = ~s.bits;
                       x.ct(NFT_CT_MARK);
                       x.bitwise(&keep, &s.bits, sizeof keep);
                       nftnl_expr* e = x.add("ct");
                       nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, NFT_CT_MARK);
                       nftnl_expr_set_u32(e, NFTNL_EXPR_CT_SREG, NFT_REG_1);
                   },
                   [&](const fence::Goto& s) {
                       nftnl_expr* e = x.add("immediate");
                       nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
                       nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, NFT_GOTO);
                       nftnl_expr_set_str(e, NFTNL_EXPR_IMM_CHAIN, s.chain.c_str());
                   },
                   [&](const fence::Ip6HopLimitEq& s) {
                       x.nfproto(NFPROTO_IPV6);
                       x.payload(NFT_PAYLOAD_NETWORK_HEADER, 7, 1, NFT_REG_1);
                       x.cmp_u8(NFT_CMP_EQ, s.value);
                   },
                   [&](const fence::Ip6AddrPrefix& s) { ip6_prefix(x, s); },
                   [&](const fence::SaddrInSet& s) {
                       bool v4 = s.family == fence::IpFamily::ipv4;
                       x.nfproto(v4 ? NFPROTO_IPV4 : NFPROTO_IPV6);
                       x.payload(NFT_PAYLOAD_NETWORK_HEADER, v4 ? 12 : 8, v4 ? 4 : 16, NFT_REG_1);
                       x.lookup(s.set, ids);
                   },
                   [&](const fence::L4ProtoEq& s) { x.l4proto(s.proto); },
                   [&](const fence::CtStateIn& s) {
                       uint32_t zero = 0;
                       x.ct(NFT_CT_STATE);
                       x.bitwise(&s.bits, &zero, sizeof(uint32_t));
                       x.cmp(NFT_CMP_NEQ, &zero, sizeof(uint32_t));
                   },
                   [&](const fence::Icmpv6TypeRange& s) {
                       x.nfproto(NFPROTO_IPV6);
                       x.l4proto(IPPROTO_ICMPV6);
                       x.payload(NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1, NFT_REG_1);
                       if (s.lo == s.hi) return x.cmp_u8(NFT_CMP_EQ, s.lo);
                       x.cmp_u8(NFT_CMP_GTE, s.lo);
                       x.cmp_u8(NFT_CMP_LTE, s.hi);
                   },
                   [&](const fence::SkuidInSet& s) {
                       x.meta(NFT_META_SKUID, NFT_REG_1);
                       // The uid set keeps big-endian keys (what nft does for intervals).
                       x.hton(NFT_REG_1, 4, 4);
                       x.lookup(s.set, ids);
                   },
                   [&](const fence::DaddrInSet& s) {
                       add_daddr(x, s.family, s.mask_len);
                       x.lookup(s.set, ids);
                   },
                   [&](const fence::DaddrProtoPortInSet& s) {
                       DaddrLayout l = daddr_layout(s.family);
                       add_daddr(x, s.family, s.mask_len);
                       x.meta(NFT_META_L4PROTO, l.proto_reg);
                       if (is_interval_set(ids, s.set)) x.hton(l.proto_reg, 1, 2);
                       x.payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, l.port_reg);
                       x.lookup(s.set, ids);
                   },
                   [&](const fence::DaddrProtoInSet& s) {
                       DaddrLayout l = daddr_layout(s.family);
                       add_daddr(x, s.family, s.mask_len);
                       x.meta(NFT_META_L4PROTO, l.proto_reg);
                       if (is_interval_set(ids, s.set)) x.hton(l.proto_reg, 1, 2);
                       x.lookup(s.set, ids);
                   },
                   [&](const fence::ThDportRange& s) {
                       uint16_t lo = htons(s.lo), hi = htons(s.hi);
                       x.payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, NFT_REG_1);
                       if (s.lo == s.hi) {
                           x.cmp(NFT_CMP_EQ, &lo, sizeof lo);
                           return;
                       }
                       x.cmp(NFT_CMP_GTE, &lo, sizeof lo);
                       x.cmp(NFT_CMP_LTE, &hi, sizeof hi);
                   },
                   [&](const fence::CounterRef& s) {
                       nftnl_expr* e = x.add("objref");
                       nftnl_expr_set_u32(e, NFTNL_EXPR_OBJREF_IMM_TYPE, NFT_OBJECT_COUNTER);
                       nftnl_expr_set_str(e, NFTNL_EXPR_OBJREF_IMM_NAME, s.name.c_str());
                   },
                   [&](const fence::Limit& s) {
                       nftnl_expr* e = x.add("limit");
                       nftnl_expr_set_u64(e, NFTNL_EXPR_LIMIT_RATE, s.rate);
                       nftnl_expr_set_u64(e, NFTNL_EXPR_LIMIT_UNIT, seconds(s.unit));
                       nftnl_expr_set_u32(e, NFTNL_EXPR_LIMIT_BURST, s.burst);
                       nftnl_expr_set_u32(e, NFTNL_EXPR_LIMIT_TYPE, NFT_LIMIT_PKTS);
                       nftnl_expr_set_u32(e, NFTNL_EXPR_LIMIT_FLAGS, 0);
                   },
                   [&](const fence::Log& s) {
                       nftnl_expr* e = x.add("log");
                       nftnl_expr_set_str(e, NFTNL_EXPR_LOG_PREFIX, s.prefix.c_str());
                       nftnl_expr_set_u32(e, NFTNL_EXPR_LOG_FLAGS, NF_LOG_UID);
                   },
                   [&](const fence::Verdict& s) {
                       nftnl_expr* e = x.add("immediate");
                       nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
                       nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT,
                                          s.kind == fence::VerdictKind::accept ? NF_ACCEPT : NF_DROP);
                   },
                   [&](const fence::Reject& s) {
                       nftnl_expr* e = x.add("reject");
                       bool rst = s.kind == fence::RejectKind::tcp_reset;
                       nftnl_expr_set_u32(e, NFTNL_EXPR_REJECT_TYPE,
                                          rst ? NFT_REJECT_TCP_RST : NFT_REJECT_ICMPX_UNREACH);
                       nftnl_expr_set_u8(e, NFTNL_EXPR_REJECT_CODE, rst ? 0 : NFT_REJECT_ICMPX_PORT_UNREACH);
                   },
                   [&](const fence::Unrecognized& s) { invalid("unrecognized statement: " + s.text); },
                   // What nft -j sends for {"mangle": {"key": {"meta": {"key": "secmark"}}, "value": N}}.
                   [&](const fence::SecmarkSet& s) {
                       nftnl_expr* imm = x.add("immediate");
                       nftnl_expr_set_u32(imm, NFTNL_EXPR_IMM_DREG, NFT_REG_1);
                       nftnl_expr_set(imm, NFTNL_EXPR_IMM_DATA, &s.value, sizeof s.value);
                       nftnl_expr* e = x.add("meta");
                       nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, NFT_META_SECMARK);
                       nftnl_expr_set_u32(e, NFTNL_EXPR_META_SREG, NFT_REG_1);
                   },
                   // nft refuses to send this match; it is what nft sends for
                   // `meta mark N` with the secmark key, and nft lists it as
                   // `meta secmark N`.
                   [&](const fence::SecmarkEq& s) {
                       x.meta(NFT_META_SECMARK, NFT_REG_1);
                       x.cmp(NFT_CMP_EQ, &s.value, sizeof s.value);
                   },
                   [&](const fence::EtherTypeEq& s) {
                       // nft's dependency in family netdev: the device is Ethernet.
                       uint16_t ether = ARPHRD_ETHER;
                       x.meta(NFT_META_IIFTYPE, NFT_REG_1);
                       x.cmp(NFT_CMP_EQ, &ether, sizeof ether);
                       uint16_t type = htons(s.type);
                       x.payload(NFT_PAYLOAD_LL_HEADER, 12, 2, NFT_REG_1);
                       x.cmp(NFT_CMP_EQ, &type, sizeof type);
                   },
               },
               stmt);
}

// --- messages ---------------------------------------------------------------
class Encoder {
  public:
    Encoder(BatchBuffer& b, BatchLabels& labels) : b_(b), labels_(labels) {}

    // The family of the table every following message is for.
    void use_family(uint16_t family) { family_ = family; }

    nlmsghdr* begin(uint16_t type, uint16_t flags, size_t max_len) {
        return nftnl_nlmsg_build_hdr(b_.reserve(max_len), type, family_, flags | NLM_F_ACK, b_.next_seq());
    }
    void finish(std::string label) {
        b_.commit();
        labels_.push_back(std::move(label));
    }

    void batch_begin() {
        nftnl_batch_begin(b_.reserve(64), b_.next_seq());
        finish("batch begin");
    }
    void batch_end() {
        nftnl_batch_end(b_.reserve(64), b_.next_seq());
        finish("batch end");
    }

    void table(uint16_t type, const std::vector<uint8_t>* userdata, const char* label, bool exclusive = false) {
        TablePtr t(nftnl_table_alloc());
        nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, fence::kTableName);
        if (type == NFT_MSG_NEWTABLE) nftnl_table_set_u32(t.get(), NFTNL_TABLE_FLAGS, 0);
        if (userdata) nftnl_table_set_data(t.get(), NFTNL_TABLE_USERDATA, userdata->data(), userdata->size());
        uint16_t flags = type == NFT_MSG_NEWTABLE ? NLM_F_CREATE | (exclusive ? NLM_F_EXCL : 0) : 0;
        nftnl_table_nlmsg_build_payload(begin(type, flags, 1024), t.get());
        finish(label);
    }

    void counter(const fence::Counter& c) {
        ObjPtr o(nftnl_obj_alloc());
        nftnl_obj_set_str(o.get(), NFTNL_OBJ_TABLE, fence::kTableName);
        nftnl_obj_set_str(o.get(), NFTNL_OBJ_NAME, c.name.c_str());
        nftnl_obj_set_u32(o.get(), NFTNL_OBJ_TYPE, NFT_OBJECT_COUNTER);
        nftnl_obj_set_u64(o.get(), NFTNL_OBJ_CTR_BYTES, c.bytes);
        nftnl_obj_set_u64(o.get(), NFTNL_OBJ_CTR_PKTS, c.packets);
        nftnl_obj_nlmsg_build_payload(begin(NFT_MSG_NEWOBJ, NLM_F_CREATE, 1024 + c.name.size()), o.get());
        finish("counter " + c.name);
    }

    void set(const fence::Set& s, uint32_t id) {
        if (s.key.empty()) invalid("set " + s.name + " has no key");
        nlmsghdr* nlh = begin(NFT_MSG_NEWSET, NLM_F_CREATE, 1024 + s.name.size());
        put_set_attrs(nlh, s, id);
        finish("set " + s.name);
        put_elements(s, id);
    }

    // Built by hand in nft's attribute order (table, name, type, policy,
    // hook: number, priority, device), which differs from
    // nftnl_chain_nlmsg_build_payload's.
    void chain(const fence::Chain& c) {
        const std::string& device = c.base ? c.base->device : c.name;
        if (c.base && device.size() >= IFNAMSIZ) invalid("interface name too long: " + device);
        nlmsghdr* nlh = begin(NFT_MSG_NEWCHAIN, NLM_F_CREATE, 1024 + c.name.size());
        mnl_attr_put_strz(nlh, NFTA_CHAIN_TABLE, fence::kTableName);
        mnl_attr_put_strz(nlh, NFTA_CHAIN_NAME, c.name.c_str());
        if (c.base) {
            uint32_t hook = NF_NETDEV_EGRESS;
            if (c.base->hook == fence::Hook::output) hook = NF_INET_LOCAL_OUT;
            if (c.base->hook == fence::Hook::forward) hook = NF_INET_FORWARD;
            if (c.base->hook == fence::Hook::prerouting) hook = NF_INET_PRE_ROUTING;
            uint32_t policy = c.base->policy == fence::Policy::accept ? NF_ACCEPT : NF_DROP;
            mnl_attr_put_strz(nlh, NFTA_CHAIN_TYPE, "filter");
            mnl_attr_put_u32(nlh, NFTA_CHAIN_POLICY, htonl(policy));
            nlattr* h = mnl_attr_nest_start(nlh, NFTA_CHAIN_HOOK);
            mnl_attr_put_u32(nlh, NFTA_HOOK_HOOKNUM, htonl(hook));
            mnl_attr_put_u32(nlh, NFTA_HOOK_PRIORITY, htonl(static_cast<uint32_t>(c.base->priority)));
            if (c.base->hook == fence::Hook::egress) mnl_attr_put_strz(nlh, NFTA_HOOK_DEV, device.c_str());
            mnl_attr_nest_end(nlh, h);
        }
        finish("chain " + c.name + (family_ == NFPROTO_NETDEV ? " of table netdev egress_fence" : ""));
    }

    void rule(const std::string& chain, const fence::Rule& r, size_t index, const SetIds& ids) {
        RulePtr rule(nftnl_rule_alloc());
        nftnl_rule_set_str(rule.get(), NFTNL_RULE_TABLE, fence::kTableName);
        nftnl_rule_set_str(rule.get(), NFTNL_RULE_CHAIN, chain.c_str());
        ExprSink x(rule.get());
        for (const auto& s : r.stmts) add_stmt(x, s, ids);
        nftnl_rule_nlmsg_build_payload(begin(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, rule_size_bound(chain, r)),
                                       rule.get());
        finish("rule " + std::to_string(index + 1) + " of chain " + chain +
               (family_ == NFPROTO_NETDEV ? " of table netdev egress_fence" : ""));
    }

    // A rule the kernel must refuse (its chain does not exist), so tests can
    // watch a whole batch being rolled back.
    void refused_rule() {
        RulePtr rule(nftnl_rule_alloc());
        nftnl_rule_set_str(rule.get(), NFTNL_RULE_TABLE, fence::kTableName);
        nftnl_rule_set_str(rule.get(), NFTNL_RULE_CHAIN, "ef_test_missing_chain");
        ExprSink x(rule.get());
        add_stmt(x, fence::Verdict{fence::VerdictKind::accept}, {});
        nftnl_rule_nlmsg_build_payload(begin(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, 1024), rule.get());
        finish("rule of chain ef_test_missing_chain (EF_TEST_FAIL_BATCH fault injection)");
    }

  private:
    static size_t rule_size_bound(const std::string& chain, const fence::Rule& r) {
        size_t n = 1024 + chain.size();
        for (const auto& s : r.stmts) {
            n += 1024;
            if (const auto* l = std::get_if<fence::Log>(&s)) n += l->prefix.size();
            if (const auto* c = std::get_if<fence::CounterRef>(&s)) n += c->name.size();
            if (const auto* o = std::get_if<fence::SkuidInSet>(&s)) n += o->set.size();
            if (const auto* o = std::get_if<fence::DaddrInSet>(&s)) n += o->set.size();
            if (const auto* o = std::get_if<fence::DaddrProtoPortInSet>(&s)) n += o->set.size();
            if (const auto* o = std::get_if<fence::DaddrProtoInSet>(&s)) n += o->set.size();
            if (const auto* o = std::get_if<fence::SaddrInSet>(&s)) n += o->set.size();
            if (const auto* o = std::get_if<fence::Goto>(&s)) n += o->chain.size();
        }
        return n;
    }

    // In nft's order; nft marks only an interval set as a concatenation
    // (flag and field lengths: pipapo needs them, a hash set does not).
    static void put_set_attrs(nlmsghdr* nlh, const fence::Set& s, uint32_t id) {
        bool concat = s.interval && s.key.size() > 1;
        uint32_t flags = (s.interval ? NFT_SET_INTERVAL : 0) | (concat ? NFT_SET_CONCAT : 0);
        uint32_t type = 0;
        // nft combines the datatypes of a concatenation 6 bits per field.
        for (auto t : s.key) type = (type << 6) | datatype_id(t);
        mnl_attr_put_strz(nlh, NFTA_SET_TABLE, fence::kTableName);
        mnl_attr_put_strz(nlh, NFTA_SET_NAME, s.name.c_str());
        mnl_attr_put_u32(nlh, NFTA_SET_FLAGS, htonl(flags));
        mnl_attr_put_u32(nlh, NFTA_SET_KEY_TYPE, htonl(type));
        mnl_attr_put_u32(nlh, NFTA_SET_KEY_LEN, htonl(static_cast<uint32_t>(key_len(s.key))));
        mnl_attr_put_u32(nlh, NFTA_SET_ID, htonl(id));
        if (concat || s.size) {
            nlattr* desc = mnl_attr_nest_start(nlh, NFTA_SET_DESC);
            if (s.size) mnl_attr_put_u32(nlh, NFTA_SET_DESC_SIZE, htonl(s.size));
            if (concat) {
                nlattr* fields = mnl_attr_nest_start(nlh, NFTA_SET_DESC_CONCAT);
                for (auto t : s.key) {
                    nlattr* f = mnl_attr_nest_start(nlh, NFTA_LIST_ELEM);
                    mnl_attr_put_u32(nlh, NFTA_SET_FIELD_LEN, htonl(static_cast<uint32_t>(value_len(t))));
                    mnl_attr_nest_end(nlh, f);
                }
                mnl_attr_nest_end(nlh, fields);
            }
            mnl_attr_nest_end(nlh, desc);
        }
        std::vector<uint8_t> ud = set_userdata(s.key);
        mnl_attr_put(nlh, NFTA_SET_USERDATA, ud.size(), ud.data());
    }

    void put_elements(const fence::Set& s, uint32_t id) {
        ElementWriter w(s);
        for (int part = 1; !w.done(); ++part) {
            nlmsghdr* nlh = begin(NFT_MSG_NEWSETELEM, NLM_F_CREATE, ElementWriter::kMaxMessage);
            mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, fence::kTableName);
            mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, s.name.c_str());
            mnl_attr_put_u32(nlh, NFTA_SET_ELEM_LIST_SET_ID, htonl(id));
            w.fill(nlh);
            finish("elements of set " + s.name + (part > 1 ? " (part " + std::to_string(part) + ")" : ""));
        }
    }

    BatchBuffer& b_;
    BatchLabels& labels_;
    uint16_t family_ = kFamily;
};

}  // namespace

std::vector<uint8_t> encode_batch_labeled(const fence::Ruleset& rs, uint32_t seq, BatchLabels& labels,
                                          bool inject_failure, BatchMode mode) {
    BatchBuffer b(seq);
    Encoder enc(b, labels);
    labels.clear();
    std::vector<uint8_t> meta = encode_metadata(rs.meta);
    const bool create = mode == BatchMode::create;
    enc.batch_begin();
    if (create) {
        enc.table(NFT_MSG_NEWTABLE, &meta, "table inet egress_fence with its metadata", true);
    } else {
        // add + delete + add: replaces the table whether or not it existed.
        enc.table(NFT_MSG_NEWTABLE, nullptr, "table inet egress_fence");
        enc.table(NFT_MSG_DELTABLE, nullptr, "deletion of the old table inet egress_fence");
        enc.table(NFT_MSG_NEWTABLE, &meta, "table inet egress_fence with its metadata");
    }
    for (const auto& c : rs.counters) enc.counter(c);
    SetIds ids;
    for (size_t i = 0; i < rs.sets.size(); ++i)
        ids[rs.sets[i].name] = SetRef{static_cast<uint32_t>(i + 1), rs.sets[i].interval};
    for (size_t i = 0; i < rs.sets.size(); ++i) enc.set(rs.sets[i], static_cast<uint32_t>(i + 1));
    for (const auto& c : rs.chains) enc.chain(c);
    for (const auto& c : rs.chains)
        for (size_t i = 0; i < c.rules.size(); ++i) enc.rule(c.name, c.rules[i], i, ids);
    if (rs.netdev) {
        // The raw-frame table, replaced the same way in the same transaction.
        const fence::NetdevTable& nd = *rs.netdev;
        enc.use_family(NFPROTO_NETDEV);
        if (!create) {
            enc.table(NFT_MSG_NEWTABLE, nullptr, "table netdev egress_fence");
            enc.table(NFT_MSG_DELTABLE, nullptr, "deletion of the old table netdev egress_fence");
        }
        enc.table(NFT_MSG_NEWTABLE, nullptr, "table netdev egress_fence (raw frames)", create);
        for (const auto& c : nd.counters) enc.counter(c);
        for (const auto& c : nd.chains) enc.chain(c);
        for (const auto& c : nd.chains)
            for (size_t i = 0; i < c.rules.size(); ++i) enc.rule(c.name, c.rules[i], i, {});
        enc.use_family(kFamily);
    }
    if (inject_failure) enc.refused_rule();
    enc.batch_end();
    return std::move(b).take();
}

std::vector<uint8_t> encode_delete_batch(uint32_t seq, BatchLabels& labels) {
    BatchBuffer b(seq);
    Encoder enc(b, labels);
    labels.clear();
    enc.batch_begin();
    // The inet table first: a kernel that stopped half way (it does not: one
    // transaction) would leave egress shut, not open.
    enc.table(NFT_MSG_NEWTABLE, nullptr, "table inet egress_fence");
    enc.table(NFT_MSG_DELTABLE, nullptr, "deletion of table inet egress_fence");
    enc.use_family(NFPROTO_NETDEV);
    enc.table(NFT_MSG_NEWTABLE, nullptr, "table netdev egress_fence");
    enc.table(NFT_MSG_DELTABLE, nullptr, "deletion of table netdev egress_fence");
    enc.use_family(kFamily);
    enc.batch_end();
    return std::move(b).take();
}

std::vector<uint8_t> encode_batch(const fence::Ruleset& rs, uint32_t seq) {
    BatchLabels labels;
    return encode_batch_labeled(rs, seq, labels);
}

}  // namespace ef::nft
