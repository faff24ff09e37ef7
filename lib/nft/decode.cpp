// nf_tables messages -> fence::Ruleset. The reverse of encode.cpp: each run of
// expressions nft would emit for a statement maps back to that statement;
// anything else becomes fence::Unrecognized, which never equals a compiled
// statement, so a tampered rule always shows in a diff.
//
// The input may be arbitrary bytes (the tests fuzz it): every length is
// checked; libnftnl is not used here (see Attrs).
#include <algorithm>
#include <cstring>
#include <map>
#include <optional>

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_log.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <net/if_arp.h>

#include <endian.h>
#include "cni/error.h"

#include "nft/codec.h"
#include "nft/elements.h"
#include "nft/nft.h"
#include "nft/readback.h"

namespace ef::nft {
namespace {

[[noreturn]] void malformed(const std::string& what) {
    throw cni::Error(cni::kNetlinkFailure, "malformed nf_tables message: " + what);
}

// --- raw attributes ------------------------------------------------------------------
// libnftnl's parsers abort() on an attribute of the wrong size ("kernel ABI is
// broken") and crash on an unknown expression name, so the decoder reads every
// attribute itself, with its length checked.
class Attrs {
  public:
    Attrs() = default;
    explicit Attrs(const nlattr* nest) { add_nested(nest); }
    static Attrs of_message(const nlmsghdr* nlh) {
        Attrs a;
        for_each_attr(nlh, sizeof(nfgenmsg), [&](const nlattr* x) { a.add(x); });
        return a;
    }
    const nlattr* get(uint16_t type) const {
        for (const auto* a : list_)
            if ((mnl_attr_get_type(a) & NLA_TYPE_MASK) == type) return a;
        return nullptr;
    }
    bool has(uint16_t type) const { return get(type) != nullptr; }
    std::optional<uint32_t> u32(uint16_t type) const {
        const nlattr* a = get(type);
        if (!a || mnl_attr_get_payload_len(a) != 4) return std::nullopt;
        return ntohl(mnl_attr_get_u32(a));
    }
    std::optional<uint64_t> u64(uint16_t type) const {
        const nlattr* a = get(type);
        if (!a || mnl_attr_get_payload_len(a) != 8) return std::nullopt;
        return be64toh(mnl_attr_get_u64(a));
    }
    std::optional<uint8_t> u8(uint16_t type) const {
        const nlattr* a = get(type);
        if (!a || mnl_attr_get_payload_len(a) != 1) return std::nullopt;
        return mnl_attr_get_u8(a);
    }
    // A string, whether or not the sender included its NUL (nft leaves it out
    // of objref names).
    std::optional<std::string> str(uint16_t type) const {
        const nlattr* a = get(type);
        if (!a) return std::nullopt;
        const char* p = static_cast<const char*>(mnl_attr_get_payload(a));
        return std::string(p, strnlen(p, mnl_attr_get_payload_len(a)));
    }
    Attrs nested(uint16_t type) const {
        const nlattr* a = get(type);
        return a ? Attrs(a) : Attrs();
    }
    // The bytes of an nft_data value (NFTA_DATA_VALUE inside `type`).
    std::optional<std::string_view> value(uint16_t type) const {
        const nlattr* v = nested(type).get(NFTA_DATA_VALUE);
        if (!v) return std::nullopt;
        return std::string_view(static_cast<const char*>(mnl_attr_get_payload(v)), mnl_attr_get_payload_len(v));
    }
    const std::vector<const nlattr*>& list() const { return list_; }

  private:
    void add(const nlattr* a) { list_.push_back(a); }
    void add_nested(const nlattr* nest) {
        for_each_nested(nest, [&](const nlattr* x) { add(x); });
    }
    std::vector<const nlattr*> list_;
};

struct Expr {
    std::string name;
    Attrs data;
};
using Exprs = std::vector<Expr>;

// --- expression predicates -------------------------------------------------------
bool u32_is(const Attrs& a, uint16_t type, uint32_t v) { return a.u32(type) == v; }
bool u32_is_or_unset(const Attrs& a, uint16_t type, uint32_t v) { return !a.has(type) || a.u32(type) == v; }

bool meta_load(const Expr& e, uint32_t key, uint32_t dreg) {
    return e.name == "meta" && u32_is(e.data, NFTA_META_KEY, key) && u32_is(e.data, NFTA_META_DREG, dreg) &&
           !e.data.has(NFTA_META_SREG);
}
// The compared bytes of `cmp <op> reg 1 <data>` when they are `len` long.
const uint8_t* cmp_data(const Expr& e, uint32_t op, uint32_t len) {
    if (e.name != "cmp" || !u32_is(e.data, NFTA_CMP_SREG, NFT_REG_1) || !u32_is(e.data, NFTA_CMP_OP, op))
        return nullptr;
    auto d = e.data.value(NFTA_CMP_DATA);
    return d && d->size() == len ? reinterpret_cast<const uint8_t*>(d->data()) : nullptr;
}
bool cmp_u8_is(const Expr& e, uint32_t op, uint8_t v) {
    const uint8_t* d = cmp_data(e, op, 1);
    return d && *d == v;
}
bool payload_load(const Expr& e, uint32_t base, uint32_t off, uint32_t len, uint32_t dreg) {
    const Attrs& a = e.data;
    return e.name == "payload" && u32_is(a, NFTA_PAYLOAD_DREG, dreg) && u32_is(a, NFTA_PAYLOAD_BASE, base) &&
           u32_is(a, NFTA_PAYLOAD_OFFSET, off) && u32_is(a, NFTA_PAYLOAD_LEN, len) && !a.has(NFTA_PAYLOAD_SREG);
}
bool hton(const Expr& e, uint32_t reg, uint32_t len, uint32_t size) {
    const Attrs& a = e.data;
    return e.name == "byteorder" && u32_is(a, NFTA_BYTEORDER_SREG, reg) && u32_is(a, NFTA_BYTEORDER_DREG, reg) &&
           u32_is(a, NFTA_BYTEORDER_OP, NFT_BYTEORDER_HTON) && u32_is(a, NFTA_BYTEORDER_LEN, len) &&
           u32_is(a, NFTA_BYTEORDER_SIZE, size);
}
// The set of a plain (not inverted, not map) `lookup reg 1 set X`.
std::optional<std::string> lookup_set(const Expr& e) {
    const Attrs& a = e.data;
    if (e.name != "lookup" || !u32_is(a, NFTA_LOOKUP_SREG, NFT_REG_1) || a.has(NFTA_LOOKUP_DREG) ||
        !u32_is_or_unset(a, NFTA_LOOKUP_FLAGS, 0))
        return std::nullopt;
    return a.str(NFTA_LOOKUP_SET);
}
bool nfproto_is(const Exprs& x, size_t i, uint8_t proto) {
    return i + 1 < x.size() && meta_load(x[i], NFT_META_NFPROTO, NFT_REG_1) && cmp_u8_is(x[i + 1], NFT_CMP_EQ, proto);
}

// --- statement matchers: each returns how many expressions it took (0: none) -----
struct Match {
    size_t taken = 0;
    fence::Stmt stmt = fence::Unrecognized{};
    // A lookup whose expressions only fit one kind of set: nft converts the
    // protocol for an interval set, not for a hash set. -1: any set.
    int interval_set = -1;
    // The family check this statement carried (nft sends it once per rule).
    uint8_t nfproto = 0;
};

// What the rule's earlier statements established.
struct Ctx {
    uint8_t nfproto = 0;  // the family already checked, 0: none
};

// The family dependency at x[i]: how many expressions it takes (2 for the
// check itself, 0 when an earlier statement of the rule made it), or
// kNoDep when neither.
constexpr size_t kNoDep = ~size_t{0};
size_t dep(const Exprs& x, size_t i, uint8_t proto, const Ctx& c) {
    if (nfproto_is(x, i, proto)) return 2;
    return c.nfproto == proto ? 0 : kNoDep;
}

Match oifname(const Exprs& x, size_t i) {
    if (i + 1 >= x.size() || !meta_load(x[i], NFT_META_OIFNAME, NFT_REG_1)) return {};
    const uint8_t* d = cmp_data(x[i + 1], NFT_CMP_EQ, IFNAMSIZ);
    if (!d) return {};
    size_t n = strnlen(reinterpret_cast<const char*>(d), IFNAMSIZ);
    if (n == IFNAMSIZ) return {};
    for (size_t k = n; k < IFNAMSIZ; ++k)
        if (d[k]) return {};
    return {2, fence::OifnameEq{std::string(reinterpret_cast<const char*>(d), n)}};
}

// `oifname != "x"` / `iifname != "x"`
Match ifname_ne(const Exprs& x, size_t i) {
    for (uint32_t key : {NFT_META_OIFNAME, NFT_META_IIFNAME}) {
        if (i + 1 >= x.size() || !meta_load(x[i], key, NFT_REG_1)) continue;
        const uint8_t* d = cmp_data(x[i + 1], NFT_CMP_NEQ, IFNAMSIZ);
        if (!d) return {};
        size_t n = strnlen(reinterpret_cast<const char*>(d), IFNAMSIZ);
        if (n == IFNAMSIZ) return {};
        for (size_t k = n; k < IFNAMSIZ; ++k)
            if (d[k]) return {};
        std::string name(reinterpret_cast<const char*>(d), n);
        if (key == NFT_META_OIFNAME) return {2, fence::OifnameNe{name}};
        return {2, fence::IifnameNe{name}};
    }
    return {};
}

// `meta skuid 0-4294967295`
Match skuid_any(const Exprs& x, size_t i) {
    if (i + 3 >= x.size() || !meta_load(x[i], NFT_META_SKUID, NFT_REG_1) || !hton(x[i + 1], NFT_REG_1, 4, 4)) return {};
    const uint8_t* lo = cmp_data(x[i + 2], NFT_CMP_GTE, 4);
    const uint8_t* hi = cmp_data(x[i + 3], NFT_CMP_LTE, 4);
    static constexpr uint8_t kZero[4] = {0, 0, 0, 0}, kOnes[4] = {0xff, 0xff, 0xff, 0xff};
    if (!lo || !hi || std::memcmp(lo, kZero, 4) != 0 || std::memcmp(hi, kOnes, 4) != 0) return {};
    return {4, fence::SkuidAny{}};
}

bool fib_is(const Expr& e, uint32_t flags, uint32_t result) {
    const Attrs& a = e.data;
    return e.name == "fib" && u32_is(a, NFTA_FIB_DREG, NFT_REG_1) && u32_is(a, NFTA_FIB_RESULT, result) &&
           u32_is(a, NFTA_FIB_FLAGS, flags);
}

// `fib saddr type != local`, `fib saddr . iif oif exists|missing`
Match fib(const Exprs& x, size_t i) {
    if (i + 1 >= x.size()) return {};
    if (fib_is(x[i], NFTA_FIB_F_SADDR, NFT_FIB_RESULT_ADDRTYPE)) {
        const uint8_t* d = cmp_data(x[i + 1], NFT_CMP_NEQ, 4);
        uint32_t type = 0;
        if (d) std::memcpy(&type, d, 4);  // host order, as nft sends it
        if (!d || type != RTN_LOCAL) return {};
        return {2, fence::FibSaddrNotLocal{}};
    }
    if (fib_is(x[i], NFTA_FIB_F_SADDR | NFTA_FIB_F_IIF | NFTA_FIB_F_PRESENT, NFT_FIB_RESULT_OIF)) {
        const uint8_t* d = cmp_data(x[i + 1], NFT_CMP_EQ, 4);
        uint32_t present = 2;
        if (d) std::memcpy(&present, d, 4);  // host order
        if (present > 1) return {};
        return {2, fence::FibSaddrIifOif{present == 1}};
    }
    return {};
}

bool ct_load(const Expr& e, uint32_t key) {
    return e.name == "ct" && u32_is(e.data, NFTA_CT_KEY, key) && u32_is(e.data, NFTA_CT_DREG, NFT_REG_1) &&
           !e.data.has(NFTA_CT_DIRECTION) && !e.data.has(NFTA_CT_SREG);
}

// [bitwise reg 1 = (reg 1 & mask) ^ xor] on 4 bytes: mask and xor, host order.
bool bitwise32(const Expr& e, uint32_t& mask, uint32_t& xr) {
    const Attrs& b = e.data;
    if (e.name != "bitwise" || !u32_is(b, NFTA_BITWISE_SREG, NFT_REG_1) || !u32_is(b, NFTA_BITWISE_DREG, NFT_REG_1) ||
        !u32_is(b, NFTA_BITWISE_LEN, 4) || !u32_is_or_unset(b, NFTA_BITWISE_OP, NFT_BITWISE_BOOL))
        return false;
    auto m = b.value(NFTA_BITWISE_MASK);
    auto v = b.value(NFTA_BITWISE_XOR);
    if (!m || m->size() != 4 || !v || v->size() != 4) return false;
    std::memcpy(&mask, m->data(), 4);
    std::memcpy(&xr, v->data(), 4);
    return true;
}

// `ct direction original|reply`, `ct mark & M == M`, `ct mark set ct mark | M`
Match ct_other(const Exprs& x, size_t i) {
    if (i + 1 >= x.size()) return {};
    if (ct_load(x[i], NFT_CT_DIRECTION)) {
        const uint8_t* d = cmp_data(x[i + 1], NFT_CMP_EQ, 1);
        if (!d || *d > 1) return {};
        return {2, fence::CtDirectionEq{*d == 1 ? fence::CtDir::reply : fence::CtDir::original}};
    }
    uint32_t mask = 0, xr = 0;
    if (i + 2 >= x.size() || !ct_load(x[i], NFT_CT_MARK) || !bitwise32(x[i + 1], mask, xr)) return {};
    if (const uint8_t* d = cmp_data(x[i + 2], NFT_CMP_EQ, 4)) {
        uint32_t want = 0;
        std::memcpy(&want, d, 4);
        if (xr != 0 || want != mask || mask == 0) return {};
        return {3, fence::CtMarkHas{mask}};
    }
    const Attrs& set = x[i + 2].data;
    if (x[i + 2].name != "ct" || !u32_is(set, NFTA_CT_KEY, NFT_CT_MARK) || !u32_is(set, NFTA_CT_SREG, NFT_REG_1) ||
        set.has(NFTA_CT_DREG) || set.has(NFTA_CT_DIRECTION) || xr == 0 || mask != ~xr)
        return {};
    return {3, fence::CtMarkOr{xr}};
}

Match l4proto(const Exprs& x, size_t i) {
    if (i + 1 >= x.size() || !meta_load(x[i], NFT_META_L4PROTO, NFT_REG_1)) return {};
    const uint8_t* d = cmp_data(x[i + 1], NFT_CMP_EQ, 1);
    if (!d) return {};
    return {2, fence::L4ProtoEq{*d}};
}

Match ct_state(const Exprs& x, size_t i) {
    if (i + 2 >= x.size()) return {};
    const Expr &ct = x[i], &bw = x[i + 1];
    if (ct.name != "ct" || !u32_is(ct.data, NFTA_CT_KEY, NFT_CT_STATE) || !u32_is(ct.data, NFTA_CT_DREG, NFT_REG_1) ||
        ct.data.has(NFTA_CT_DIRECTION) || ct.data.has(NFTA_CT_SREG))
        return {};
    const Attrs& b = bw.data;
    if (bw.name != "bitwise" || !u32_is(b, NFTA_BITWISE_SREG, NFT_REG_1) || !u32_is(b, NFTA_BITWISE_DREG, NFT_REG_1) ||
        !u32_is(b, NFTA_BITWISE_LEN, 4) || !u32_is_or_unset(b, NFTA_BITWISE_OP, NFT_BITWISE_BOOL))
        return {};
    auto mask = b.value(NFTA_BITWISE_MASK);
    auto xr = b.value(NFTA_BITWISE_XOR);
    uint32_t zero = 0, bits = 0;
    if (!mask || mask->size() != 4 || !xr || xr->size() != 4 || std::memcmp(xr->data(), &zero, 4) != 0) return {};
    const uint8_t* d = cmp_data(x[i + 2], NFT_CMP_NEQ, 4);
    if (!d || std::memcmp(d, &zero, 4) != 0) return {};
    std::memcpy(&bits, mask->data(), 4);  // host order, as nft sends the mask
    return {3, fence::CtStateIn{bits}};
}

// `icmpv6 type T` ([cmp eq]) or `icmpv6 type LO-HI` ([cmp gte] [cmp lte]).
Match icmpv6_type(const Exprs& x, size_t i, const Ctx& c) {
    size_t d = dep(x, i, NFPROTO_IPV6, c);
    if (d == kNoDep) return {};
    size_t k = i + d;
    if (k + 3 >= x.size() || !meta_load(x[k], NFT_META_L4PROTO, NFT_REG_1) ||
        !cmp_u8_is(x[k + 1], NFT_CMP_EQ, IPPROTO_ICMPV6) ||
        !payload_load(x[k + 2], NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1, NFT_REG_1))
        return {};
    uint8_t proto = d ? NFPROTO_IPV6 : 0;
    if (const uint8_t* eq = cmp_data(x[k + 3], NFT_CMP_EQ, 1))
        return {k + 4 - i, fence::Icmpv6TypeRange{*eq, *eq}, -1, proto};
    if (k + 4 >= x.size()) return {};
    const uint8_t* lo = cmp_data(x[k + 3], NFT_CMP_GTE, 1);
    const uint8_t* hi = cmp_data(x[k + 4], NFT_CMP_LTE, 1);
    if (!lo || !hi) return {};
    return {k + 5 - i, fence::Icmpv6TypeRange{*lo, *hi}, -1, proto};
}

Match skuid(const Exprs& x, size_t i) {
    if (i + 2 >= x.size() || !meta_load(x[i], NFT_META_SKUID, NFT_REG_1) || !hton(x[i + 1], NFT_REG_1, 4, 4)) return {};
    auto set = lookup_set(x[i + 2]);
    if (!set) return {};
    return {3, fence::SkuidInSet{*set}};
}

struct Layout {
    fence::IpFamily family;
    uint8_t nfproto;
    uint32_t offset, len, proto_reg, port_reg;
};
constexpr Layout kLayouts[] = {
    {fence::IpFamily::ipv4, NFPROTO_IPV4, 16, 4, NFT_REG32_01, NFT_REG32_02},
    {fence::IpFamily::ipv6, NFPROTO_IPV6, 24, 16, NFT_REG_2, NFT_REG32_05},
};

// The prefix length of a mask of `len` bytes that keeps the first 1 ..
// len*8-1 bits (what nft sends for `ip daddr & 255.255.255.0`); 0 otherwise.
uint8_t prefix_mask_len(std::string_view mask, size_t len) {
    if (mask.size() != len) return 0;
    size_t ones = 0;
    while (ones < len * 8 && (static_cast<uint8_t>(mask[ones / 8]) & (0x80 >> (ones % 8)))) ++ones;
    for (size_t bit = ones; bit < len * 8; ++bit)
        if (static_cast<uint8_t>(mask[bit / 8]) & (0x80 >> (bit % 8))) return 0;
    return ones < len * 8 ? static_cast<uint8_t>(ones) : 0;
}

// `[bitwise reg 1 = (reg 1 & MASK) ^ 0]` on an address of `len` bytes: the
// mask's prefix length, or 0 when it is anything else.
uint8_t address_mask(const Expr& e, uint32_t len) {
    const Attrs& b = e.data;
    if (e.name != "bitwise" || !u32_is(b, NFTA_BITWISE_SREG, NFT_REG_1) || !u32_is(b, NFTA_BITWISE_DREG, NFT_REG_1) ||
        !u32_is(b, NFTA_BITWISE_LEN, len) || !u32_is_or_unset(b, NFTA_BITWISE_OP, NFT_BITWISE_BOOL))
        return 0;
    auto mask = b.value(NFTA_BITWISE_MASK);
    auto xr = b.value(NFTA_BITWISE_XOR);
    if (!mask || !xr || xr->size() != len) return 0;
    for (char c : *xr)
        if (c != 0) return 0;
    return prefix_mask_len(*mask, len);
}

// The destination address loaded into register 1, masked or not: how many
// expressions that took (3, 4 with a mask; 0: not this), and the mask.
size_t daddr_load(const Exprs& x, size_t i, const Layout& l, uint8_t& mask_len, const Ctx& c) {
    mask_len = 0;
    size_t d = dep(x, i, l.nfproto, c);
    if (d == kNoDep || i + d >= x.size() ||
        !payload_load(x[i + d], NFT_PAYLOAD_NETWORK_HEADER, l.offset, l.len, NFT_REG_1))
        return 0;
    if (i + d + 1 < x.size() && x[i + d + 1].name == "bitwise") {
        mask_len = address_mask(x[i + d + 1], l.len);
        return mask_len ? d + 2 : 0;
    }
    return d + 1;
}

Match daddr_proto_port(const Exprs& x, size_t i, const Ctx& c) {
    for (const Layout& l : kLayouts) {
        uint8_t mask_len = 0;
        size_t n = daddr_load(x, i, l, mask_len, c);
        if (!n || i + n + 2 >= x.size() || !meta_load(x[i + n], NFT_META_L4PROTO, l.proto_reg)) continue;
        size_t k = i + n + 1;
        bool converted = hton(x[k], l.proto_reg, 1, 2);
        if (converted) ++k;
        if (k + 1 >= x.size() || !payload_load(x[k], NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, l.port_reg)) continue;
        if (auto set = lookup_set(x[k + 1]))
            return {k + 2 - i, fence::DaddrProtoPortInSet{l.family, *set, mask_len}, converted ? 1 : 0, l.nfproto};
    }
    return {};
}

Match daddr_proto(const Exprs& x, size_t i, const Ctx& c) {
    for (const Layout& l : kLayouts) {
        uint8_t mask_len = 0;
        size_t n = daddr_load(x, i, l, mask_len, c);
        if (!n || i + n + 1 >= x.size() || !meta_load(x[i + n], NFT_META_L4PROTO, l.proto_reg)) continue;
        size_t k = i + n + 1;
        bool converted = hton(x[k], l.proto_reg, 1, 2);
        if (converted) ++k;
        if (k >= x.size()) continue;
        if (auto set = lookup_set(x[k]))
            return {k + 1 - i, fence::DaddrProtoInSet{l.family, *set, mask_len}, converted ? 1 : 0, l.nfproto};
    }
    return {};
}

// `th dport lo-hi`: [payload dport] [cmp gte lo] [cmp lte hi], or one port: [cmp eq].
Match th_dport(const Exprs& x, size_t i) {
    if (i + 1 >= x.size() || !payload_load(x[i], NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, NFT_REG_1)) return {};
    auto be16 = [](const uint8_t* d) { return static_cast<uint16_t>(d[0] << 8 | d[1]); };
    if (const uint8_t* eq = cmp_data(x[i + 1], NFT_CMP_EQ, 2)) return {2, fence::ThDportRange{be16(eq), be16(eq)}};
    if (i + 2 >= x.size()) return {};
    const uint8_t* lo = cmp_data(x[i + 1], NFT_CMP_GTE, 2);
    const uint8_t* hi = cmp_data(x[i + 2], NFT_CMP_LTE, 2);
    if (!lo || !hi) return {};
    return {3, fence::ThDportRange{be16(lo), be16(hi)}};
}

Match daddr(const Exprs& x, size_t i, const Ctx& c) {
    for (const Layout& l : kLayouts) {
        uint8_t mask_len = 0;
        size_t n = daddr_load(x, i, l, mask_len, c);
        if (!n || i + n >= x.size()) continue;
        if (auto set = lookup_set(x[i + n])) return {n + 1, fence::DaddrInSet{l.family, *set, mask_len}, -1, l.nfproto};
    }
    return {};
}

// `ip saddr @set` / `ip6 saddr @set`
Match saddr_in_set(const Exprs& x, size_t i, const Ctx& c) {
    for (const Layout& l : kLayouts) {
        size_t d = dep(x, i, l.nfproto, c);
        uint32_t offset = l.family == fence::IpFamily::ipv4 ? 12 : 8;
        if (d == kNoDep || i + d + 1 >= x.size() ||
            !payload_load(x[i + d], NFT_PAYLOAD_NETWORK_HEADER, offset, l.len, NFT_REG_1))
            continue;
        if (auto set = lookup_set(x[i + d + 1])) return {d + 2, fence::SaddrInSet{l.family, *set}, -1, l.nfproto};
    }
    return {};
}

// `ip6 hoplimit N`
Match ip6_hoplimit(const Exprs& x, size_t i, const Ctx& c) {
    size_t d = dep(x, i, NFPROTO_IPV6, c);
    if (d == kNoDep || i + d + 1 >= x.size() || !payload_load(x[i + d], NFT_PAYLOAD_NETWORK_HEADER, 7, 1, NFT_REG_1))
        return {};
    const uint8_t* v = cmp_data(x[i + d + 1], NFT_CMP_EQ, 1);
    if (!v) return {};
    return {d + 2, fence::Ip6HopLimitEq{*v}, -1, NFPROTO_IPV6};
}

// `exthdr rt exists`: the extension header's presence loaded, compared to 1.
Match ip6_exthdr_exists(const Exprs& x, size_t i, const Ctx& c) {
    size_t d = dep(x, i, NFPROTO_IPV6, c);
    if (d == kNoDep || i + d + 1 >= x.size()) return {};
    const Expr& e = x[i + d];
    const Attrs& a = e.data;
    auto type = a.u8(NFTA_EXTHDR_TYPE);
    if (e.name != "exthdr" || !type || !u32_is(a, NFTA_EXTHDR_DREG, NFT_REG_1) ||
        !u32_is_or_unset(a, NFTA_EXTHDR_OFFSET, 0) || !u32_is(a, NFTA_EXTHDR_LEN, 1) ||
        !u32_is(a, NFTA_EXTHDR_FLAGS, NFT_EXTHDR_F_PRESENT) ||
        !u32_is_or_unset(a, NFTA_EXTHDR_OP, NFT_EXTHDR_OP_IPV6) || a.has(NFTA_EXTHDR_SREG) ||
        !cmp_u8_is(x[i + d + 1], NFT_CMP_EQ, 1))
        return {};
    return {d + 2, fence::Ip6ExthdrExists{*type}, -1, NFPROTO_IPV6};
}

// `ip6 saddr/daddr PREFIX`: the prefix's whole bytes compared, or the address
// masked and compared (what encode.cpp sends for each length).
Match ip6_prefix(const Exprs& x, size_t i, const Ctx& c) {
    size_t d = dep(x, i, NFPROTO_IPV6, c);
    if (d == kNoDep || i + d + 1 >= x.size() || x[i + d].name != "payload") return {};
    for (bool source : {false, true}) {
        uint32_t offset = source ? 8 : 24;
        for (uint32_t len = 1; len <= 16; ++len) {
            if (!payload_load(x[i + d], NFT_PAYLOAD_NETWORK_HEADER, offset, len, NFT_REG_1)) continue;
            size_t k = i + d + 1;
            auto bits = static_cast<uint8_t>(len * 8);
            if (len == 16 && x[k].name == "bitwise") {
                bits = address_mask(x[k], 16);
                if (bits == 0 || bits % 8 == 0 || ++k >= x.size()) return {};
            }
            const uint8_t* v = cmp_data(x[k], NFT_CMP_EQ, len);
            if (!v) return {};
            fence::Bytes addr(16);
            std::memcpy(addr.data(), v, len);
            for (size_t bit = bits; bit < 128; ++bit)
                if (addr[bit / 8] & (0x80 >> (bit % 8))) return {};  // host bits: not a prefix
            return {k + 1 - i, fence::Ip6AddrPrefix{source, addr, bits}, -1, NFPROTO_IPV6};
        }
    }
    return {};
}

Match counter_ref(const Exprs& x, size_t i) {
    const Attrs& a = x[i].data;
    if (x[i].name != "objref" || !u32_is(a, NFTA_OBJREF_IMM_TYPE, NFT_OBJECT_COUNTER) || a.has(NFTA_OBJREF_SET_SREG))
        return {};
    auto name = a.str(NFTA_OBJREF_IMM_NAME);
    if (!name) return {};
    return {1, fence::CounterRef{*name}};
}

Match limit(const Exprs& x, size_t i) {
    const Attrs& a = x[i].data;
    auto rate = a.u64(NFTA_LIMIT_RATE);
    auto unit = a.u64(NFTA_LIMIT_UNIT);
    auto burst = a.u32(NFTA_LIMIT_BURST);
    if (x[i].name != "limit" || !rate || !unit || !burst || !u32_is(a, NFTA_LIMIT_TYPE, NFT_LIMIT_PKTS) ||
        !u32_is_or_unset(a, NFTA_LIMIT_FLAGS, 0))
        return {};
    static const std::pair<uint64_t, fence::TimeUnit> units[] = {{1, fence::TimeUnit::second},
                                                                 {60, fence::TimeUnit::minute},
                                                                 {3600, fence::TimeUnit::hour},
                                                                 {86400, fence::TimeUnit::day}};
    for (auto [secs, u] : units)
        if (secs == *unit) return {1, fence::Limit{*rate, u, *burst}};
    return {};
}

Match log(const Exprs& x, size_t i) {
    const Attrs& a = x[i].data;
    // The kernel reports the default level (warning) it filled in.
    if (x[i].name != "log" || !u32_is(a, NFTA_LOG_FLAGS, NF_LOG_UID) || a.has(NFTA_LOG_GROUP) ||
        !u32_is_or_unset(a, NFTA_LOG_LEVEL, 4))
        return {};
    return {1, fence::Log{a.str(NFTA_LOG_PREFIX).value_or("")}};
}

Match verdict(const Exprs& x, size_t i) {
    const Attrs& a = x[i].data;
    if (x[i].name != "immediate" || !u32_is(a, NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT)) return {};
    Attrs v = a.nested(NFTA_IMMEDIATE_DATA).nested(NFTA_DATA_VERDICT);
    if (v.has(NFTA_VERDICT_CHAIN_ID)) return {};
    if (v.has(NFTA_VERDICT_CHAIN)) {
        auto chain = v.str(NFTA_VERDICT_CHAIN);
        if (!chain || !u32_is(v, NFTA_VERDICT_CODE, static_cast<uint32_t>(NFT_GOTO))) return {};
        return {1, fence::Goto{*chain}};
    }
    if (u32_is(v, NFTA_VERDICT_CODE, NF_ACCEPT)) return {1, fence::Verdict{fence::VerdictKind::accept}};
    if (u32_is(v, NFTA_VERDICT_CODE, NF_DROP)) return {1, fence::Verdict{fence::VerdictKind::drop}};
    return {};
}

Match reject(const Exprs& x, size_t i) {
    const Attrs& a = x[i].data;
    if (x[i].name != "reject") return {};
    auto code = a.u8(NFTA_REJECT_ICMP_CODE);
    if (a.has(NFTA_REJECT_ICMP_CODE) && !code) return {};
    // The kernel leaves the code out for a TCP reset.
    if (u32_is(a, NFTA_REJECT_TYPE, NFT_REJECT_TCP_RST) && code.value_or(0) == 0)
        return {1, fence::Reject{fence::RejectKind::tcp_reset}};
    if (u32_is(a, NFTA_REJECT_TYPE, NFT_REJECT_ICMPX_UNREACH) && code == NFT_REJECT_ICMPX_PORT_UNREACH)
        return {1, fence::Reject{fence::RejectKind::icmpx_port_unreachable}};
    return {};
}

// `meta secmark set N`: [immediate reg 1 N] [meta set secmark reg 1].
Match secmark_set(const Exprs& x, size_t i) {
    if (i + 1 >= x.size() || x[i].name != "immediate" || !u32_is(x[i].data, NFTA_IMMEDIATE_DREG, NFT_REG_1)) return {};
    auto v = x[i].data.value(NFTA_IMMEDIATE_DATA);
    const Attrs& m = x[i + 1].data;
    if (!v || v->size() != 4 || x[i + 1].name != "meta" || !u32_is(m, NFTA_META_KEY, NFT_META_SECMARK) ||
        !u32_is(m, NFTA_META_SREG, NFT_REG_1) || m.has(NFTA_META_DREG))
        return {};
    uint32_t value;
    std::memcpy(&value, v->data(), 4);  // host order, as nft sends it
    return {2, fence::SecmarkSet{value}};
}

Match secmark_eq(const Exprs& x, size_t i) {
    if (i + 1 >= x.size() || !meta_load(x[i], NFT_META_SECMARK, NFT_REG_1)) return {};
    const uint8_t* d = cmp_data(x[i + 1], NFT_CMP_EQ, 4);
    if (!d) return {};
    uint32_t value;
    std::memcpy(&value, d, 4);
    return {2, fence::SecmarkEq{value}};
}

// `ether type T` in family netdev: nft's iiftype dependency, then the type.
Match ether_type(const Exprs& x, size_t i) {
    if (i + 3 >= x.size() || !meta_load(x[i], NFT_META_IIFTYPE, NFT_REG_1) ||
        !payload_load(x[i + 2], NFT_PAYLOAD_LL_HEADER, 12, 2, NFT_REG_1))
        return {};
    const uint8_t* dev = cmp_data(x[i + 1], NFT_CMP_EQ, 2);
    const uint8_t* type = cmp_data(x[i + 3], NFT_CMP_EQ, 2);
    uint16_t ether = ARPHRD_ETHER;
    if (!dev || std::memcmp(dev, &ether, 2) != 0 || !type) return {};
    return {4, fence::EtherTypeEq{static_cast<uint16_t>(type[0] << 8 | type[1])}};
}

// `[name type=value ...]`: enough to tell a human what is there.
std::string describe(const Expr& e) {
    std::string text = "[" + e.name;
    for (const nlattr* a : e.data.list()) {
        uint16_t type = mnl_attr_get_type(a) & NLA_TYPE_MASK;
        const auto* p = static_cast<const uint8_t*>(mnl_attr_get_payload(a));
        size_t n = std::min<size_t>(mnl_attr_get_payload_len(a), 64);
        text.append(" ").append(std::to_string(type)).append("=").append(hex(p, n));
    }
    return text + "]";
}

// The kind of each set decoded so far (sets come before rules in a dump and
// in a batch): true for an interval set.
using SetKinds = std::map<std::string, bool, std::less<>>;

// Whether `m` fits the set it looks up (a set not in the table fits any form).
bool fits(const Match& m, const SetKinds& kinds) {
    if (m.interval_set < 0) return true;
    const std::string* set = nullptr;
    if (const auto* s = std::get_if<fence::DaddrProtoPortInSet>(&m.stmt)) set = &s->set;
    if (const auto* s = std::get_if<fence::DaddrProtoInSet>(&m.stmt)) set = &s->set;
    if (!set) return true;
    auto it = kinds.find(*set);
    return it == kinds.end() || it->second == (m.interval_set == 1);
}

template <Match (*F)(const Exprs&, size_t)>
Match without_ctx(const Exprs& x, size_t i, const Ctx&) {
    return F(x, i);
}

std::vector<fence::Stmt> statements(const Exprs& x, const SetKinds& kinds) {
    using Matcher = Match (*)(const Exprs&, size_t, const Ctx&);
    // Longer patterns first: they share prefixes with shorter ones.
    static const Matcher matchers[] = {icmpv6_type,
                                       daddr_proto_port,
                                       daddr_proto,
                                       daddr,
                                       saddr_in_set,
                                       ip6_hoplimit,
                                       ip6_exthdr_exists,
                                       ip6_prefix,
                                       without_ctx<skuid_any>,
                                       without_ctx<skuid>,
                                       without_ctx<ct_state>,
                                       without_ctx<ct_other>,
                                       without_ctx<fib>,
                                       without_ctx<oifname>,
                                       without_ctx<ifname_ne>,
                                       without_ctx<l4proto>,
                                       without_ctx<th_dport>,
                                       without_ctx<counter_ref>,
                                       without_ctx<limit>,
                                       without_ctx<log>,
                                       without_ctx<verdict>,
                                       without_ctx<reject>,
                                       without_ctx<ether_type>,
                                       without_ctx<secmark_set>,
                                       without_ctx<secmark_eq>};
    std::vector<fence::Stmt> out;
    Ctx ctx;
    for (size_t i = 0; i < x.size();) {
        Match m;
        for (Matcher f : matchers) {
            m = f(x, i, ctx);
            if (m.taken && fits(m, kinds)) break;
            m = Match{};
        }
        if (m.taken) {
            out.push_back(std::move(m.stmt));
            if (m.nfproto) ctx.nfproto = m.nfproto;
            i += m.taken;
            continue;
        }
        std::string text = describe(x[i++]);
        if (!out.empty())
            if (auto* u = std::get_if<fence::Unrecognized>(&out.back())) {
                u->text += " " + text;
                continue;
            }
        out.emplace_back(fence::Unrecognized{text});
    }
    return out;
}

// --- objects -----------------------------------------------------------------------
const char* hook_name(uint32_t hooknum) {
    switch (hooknum) {
        case NF_INET_PRE_ROUTING: return "prerouting";
        case NF_INET_LOCAL_IN: return "input";
        case NF_INET_FORWARD: return "forward";
        case NF_INET_LOCAL_OUT: return "output";
        case NF_INET_POST_ROUTING: return "postrouting";
        default: return "unknown";
    }
}

fence::Chain to_chain(const std::string& name, const Attrs& a) {
    fence::Chain ch{name, std::nullopt, {}};
    if (!a.has(NFTA_CHAIN_HOOK)) return ch;
    Attrs hook_attrs = a.nested(NFTA_CHAIN_HOOK);
    auto hook = hook_attrs.u32(NFTA_HOOK_HOOKNUM);
    auto prio = hook_attrs.u32(NFTA_HOOK_PRIORITY);
    auto type = a.str(NFTA_CHAIN_TYPE);
    uint32_t policy = a.u32(NFTA_CHAIN_POLICY).value_or(NF_ACCEPT);
    bool known = hook && prio &&
                 (*hook == NF_INET_LOCAL_OUT || *hook == NF_INET_FORWARD || *hook == NF_INET_PRE_ROUTING) &&
                 type == "filter" && (policy == NF_ACCEPT || policy == NF_DROP);
    if (!known) {
        // Not a shape the fence builds; keep it visible to any comparison.
        ch.rules.push_back(
            {{fence::Unrecognized{"base chain type " + type.value_or("?") + " hook " + hook_name(hook.value_or(~0u)) +
                                  " policy " + std::to_string(policy)}}});
        return ch;
    }
    fence::Hook h = *hook == NF_INET_LOCAL_OUT ? fence::Hook::output
                    : *hook == NF_INET_FORWARD ? fence::Hook::forward
                                               : fence::Hook::prerouting;
    ch.base = fence::BaseHook{h, static_cast<int32_t>(*prio),
                              policy == NF_ACCEPT ? fence::Policy::accept : fence::Policy::drop, ""};
    return ch;
}

Exprs expressions(const Attrs& rule) {
    Exprs x;
    const nlattr* list = rule.get(NFTA_RULE_EXPRESSIONS);
    if (!list) return x;
    for_each_nested(list, [&](const nlattr* elem) {
        if ((mnl_attr_get_type(elem) & NLA_TYPE_MASK) != NFTA_LIST_ELEM) return;
        Attrs e(elem);
        x.push_back({e.str(NFTA_EXPR_NAME).value_or("?"), e.nested(NFTA_EXPR_DATA)});
    });
    return x;
}

// Decoder state across messages.
class Decoder {
  public:
    explicit Decoder(bool read_set_count = true) : read_set_count_(read_set_count) {}
    void message(const nlmsghdr* nlh);
    const std::vector<fence::Set>& sets() const { return rs_.sets; }
    const std::vector<KernelSet>& kernel_sets() const { return kernel_sets_; }
    bool has_table() const { return has_table_; }
    fence::Ruleset finish();

  private:
    void table(const nlmsghdr* nlh);
    void counter(const nlmsghdr* nlh);
    void set(const nlmsghdr* nlh);
    void elements(const nlmsghdr* nlh);
    void chain(const nlmsghdr* nlh);
    void rule(const nlmsghdr* nlh);
    void netdev_message(const nlmsghdr* nlh, uint16_t type);

    fence::Ruleset rs_;
    uint32_t table_flags_ = 0;
    uint32_t netdev_flags_ = 0;
    std::vector<fence::Chain> no_chains_;
    std::map<std::string, ElementReader, std::less<>> readers_;
    SetKinds set_kinds_;
    // One per set, in the order of rs_.sets.
    std::vector<KernelSet> kernel_sets_;
    bool read_set_count_;
    bool has_table_ = false;
};

void Decoder::message(const nlmsghdr* nlh) {
    if (nlh->nlmsg_type == NLMSG_ERROR) {
        const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
        if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr))) malformed("short error message");
        if (err->error == 0) return;  // an ack
        throw cni::Error(cni::kNetlinkFailure, std::string("nf_tables answered: ") + strerror(-err->error));
    }
    if (nlh->nlmsg_type < NLMSG_MIN_TYPE) return;  // NOOP, DONE
    if (nlh->nlmsg_type == NFNL_MSG_BATCH_BEGIN || nlh->nlmsg_type == NFNL_MSG_BATCH_END) return;
    if (NFNL_SUBSYS_ID(nlh->nlmsg_type) != NFNL_SUBSYS_NFTABLES)
        malformed("message type " + std::to_string(nlh->nlmsg_type) + " is not nf_tables'");
    if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(nfgenmsg))) malformed("message without nfgenmsg header");
    const auto* gen = static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(nlh));
    uint16_t type = NFNL_MSG_TYPE(nlh->nlmsg_type);
    if (gen->nfgen_family == NFPROTO_NETDEV) return netdev_message(nlh, type);
    if (gen->nfgen_family != kFamily) return;  // not family inet or netdev: not ours
    switch (type) {
        case NFT_MSG_NEWTABLE: return table(nlh);
        case NFT_MSG_DELTABLE:
            rs_ = {};
            readers_.clear();
            set_kinds_.clear();
            kernel_sets_.clear();
            has_table_ = false;
            table_flags_ = 0;
            return;
        case NFT_MSG_NEWOBJ: return counter(nlh);
        case NFT_MSG_NEWSET: return set(nlh);
        case NFT_MSG_NEWSETELEM: return elements(nlh);
        case NFT_MSG_NEWCHAIN: return chain(nlh);
        case NFT_MSG_NEWRULE: return rule(nlh);
        case NFT_MSG_NEWGEN: return;
        default: malformed("unexpected nf_tables message " + std::to_string(NFNL_MSG_TYPE(nlh->nlmsg_type)));
    }
}

void Decoder::table(const nlmsghdr* nlh) {
    Attrs a = Attrs::of_message(nlh);
    auto name = a.str(NFTA_TABLE_NAME);
    if (!name) malformed("table without a name");
    if (*name != fence::kTableName) return;
    has_table_ = true;
    table_flags_ = a.u32(NFTA_TABLE_FLAGS).value_or(0);
    const nlattr* ud = a.get(NFTA_TABLE_USERDATA);
    rs_.meta = ud ? decode_metadata(static_cast<const uint8_t*>(mnl_attr_get_payload(ud)), mnl_attr_get_payload_len(ud))
                  : fence::Metadata{};
}

void Decoder::counter(const nlmsghdr* nlh) {
    Attrs a = Attrs::of_message(nlh);
    auto table = a.str(NFTA_OBJ_TABLE);
    auto name = a.str(NFTA_OBJ_NAME);
    if (!table || !name) malformed("object without a table or name");
    // Other object kinds are not part of the model; rules using them show up
    // as unrecognized objref expressions.
    if (*table != fence::kTableName || a.u32(NFTA_OBJ_TYPE) != NFT_OBJECT_COUNTER) return;
    Attrs data = a.nested(NFTA_OBJ_DATA);
    rs_.counters.push_back(
        {*name, data.u64(NFTA_COUNTER_PACKETS).value_or(0), data.u64(NFTA_COUNTER_BYTES).value_or(0)});
}

std::optional<fence::FieldType> field_type(uint32_t id) {
    for (auto t : {fence::FieldType::ipv4_addr, fence::FieldType::ipv6_addr, fence::FieldType::inet_proto,
                   fence::FieldType::inet_service, fence::FieldType::uid})
        if (datatype_id(t) == id) return t;
    return std::nullopt;
}

// The key fields of a set, empty when it is not a shape the fence builds:
// an interval set flags a concatenation as one, a hash set does not (nft's
// way, encode.cpp).
std::vector<fence::FieldType> key_fields(uint32_t flags, uint32_t type, uint32_t len) {
    if (flags & ~uint32_t(NFT_SET_INTERVAL | NFT_SET_CONCAT)) return {};
    std::vector<fence::FieldType> key;
    do {
        auto t = field_type(type & 0x3f);
        if (!t) return {};
        key.insert(key.begin(), *t);
        type >>= 6;
    } while (type && key.size() < 8);
    bool concat = (flags & NFT_SET_CONCAT) != 0;
    bool concat_expected = (flags & NFT_SET_INTERVAL) && key.size() > 1;
    if (type || concat != concat_expected || key_len(key) != len) return {};
    return key;
}

uint32_t be32_attr(const nlattr* a) {
    if (mnl_attr_validate(a, MNL_TYPE_U32) < 0) malformed("set attribute of the wrong size");
    return ntohl(mnl_attr_get_u32(a));
}

void Decoder::set(const nlmsghdr* nlh) {
    std::string name, table;
    uint32_t flags = 0, type = 0, len = 0, size = 0;
    KernelSet kernel;
    for_each_attr(nlh, sizeof(nfgenmsg), [&](const nlattr* a) {
        switch (mnl_attr_get_type(a)) {
            case kNftaSetCount:
                if (read_set_count_) kernel.count = be32_attr(a);
                break;
            case kNftaSetType:
                kernel.backend = std::string(static_cast<const char*>(mnl_attr_get_payload(a)),
                                             strnlen(static_cast<const char*>(mnl_attr_get_payload(a)),
                                                     mnl_attr_get_payload_len(a)));
                break;
            case NFTA_SET_TABLE:
            case NFTA_SET_NAME:
                if (mnl_attr_validate(a, MNL_TYPE_NUL_STRING) < 0) malformed("set name");
                (mnl_attr_get_type(a) == NFTA_SET_NAME ? name : table) = mnl_attr_get_str(a);
                break;
            case NFTA_SET_FLAGS: flags = be32_attr(a); break;
            case NFTA_SET_KEY_TYPE: type = be32_attr(a); break;
            case NFTA_SET_KEY_LEN: len = be32_attr(a); break;
            case NFTA_SET_DESC:
                for_each_nested(a, [&](const nlattr* d) {
                    if (mnl_attr_get_type(d) == NFTA_SET_DESC_SIZE) size = be32_attr(d);
                });
                break;
            default: break;
        }
    });
    if (name.empty()) malformed("set without a name");
    if (table != fence::kTableName) return;
    fence::Set s{name, key_fields(flags, type, len), (flags & NFT_SET_INTERVAL) != 0, {}, size};
    set_kinds_[name] = s.interval;
    readers_.erase(name);
    readers_.emplace(name, ElementReader(s));
    kernel.name = name;
    kernel_sets_.push_back(std::move(kernel));
    rs_.sets.push_back(std::move(s));
}

void Decoder::elements(const nlmsghdr* nlh) {
    std::string set, table;
    const nlattr* list = nullptr;
    for_each_attr(nlh, sizeof(nfgenmsg), [&](const nlattr* a) {
        switch (mnl_attr_get_type(a)) {
            case NFTA_SET_ELEM_LIST_TABLE:
            case NFTA_SET_ELEM_LIST_SET:
                if (mnl_attr_validate(a, MNL_TYPE_NUL_STRING) < 0) malformed("set element list name");
                (mnl_attr_get_type(a) == NFTA_SET_ELEM_LIST_SET ? set : table) = mnl_attr_get_str(a);
                break;
            case NFTA_SET_ELEM_LIST_ELEMENTS: list = a; break;
            default: break;
        }
    });
    if (table != fence::kTableName) return;
    auto it = readers_.find(set);
    if (it == readers_.end()) malformed("elements of unknown set '" + set + "'");
    if (list) it->second.add_list(list);
}

void Decoder::chain(const nlmsghdr* nlh) {
    Attrs a = Attrs::of_message(nlh);
    auto table = a.str(NFTA_CHAIN_TABLE);
    auto name = a.str(NFTA_CHAIN_NAME);
    if (!table || !name) malformed("chain without a table or name");
    if (*table != fence::kTableName) return;
    rs_.chains.push_back(to_chain(*name, a));
}

void Decoder::rule(const nlmsghdr* nlh) {
    Attrs a = Attrs::of_message(nlh);
    auto table = a.str(NFTA_RULE_TABLE);
    auto chain = a.str(NFTA_RULE_CHAIN);
    if (!table || !chain) malformed("rule without table or chain");
    if (*table != fence::kTableName) return;
    for (auto& c : rs_.chains)
        if (c.name == *chain) {
            c.rules.push_back({statements(expressions(a), set_kinds_)});
            return;
        }
    malformed("rule of unknown chain '" + *chain + "'");
}

// The hook of a chain in table netdev egress_fence: the egress hook of one
// device, or an Unrecognized rule saying what it is instead.
fence::Chain to_netdev_chain(const std::string& name, const Attrs& a) {
    fence::Chain ch{name, std::nullopt, {}};
    if (!a.has(NFTA_CHAIN_HOOK)) return ch;
    Attrs h = a.nested(NFTA_CHAIN_HOOK);
    auto hook = h.u32(NFTA_HOOK_HOOKNUM);
    auto prio = h.u32(NFTA_HOOK_PRIORITY);
    auto dev = h.str(NFTA_HOOK_DEV);
    auto type = a.str(NFTA_CHAIN_TYPE);
    uint32_t policy = a.u32(NFTA_CHAIN_POLICY).value_or(NF_ACCEPT);
    if (hook == NF_NETDEV_EGRESS && prio && dev && type == "filter" && (policy == NF_ACCEPT || policy == NF_DROP)) {
        ch.base = fence::BaseHook{fence::Hook::egress, static_cast<int32_t>(*prio),
                                  policy == NF_ACCEPT ? fence::Policy::accept : fence::Policy::drop, *dev};
        return ch;
    }
    ch.rules.push_back({{fence::Unrecognized{"netdev base chain type " + type.value_or("?") + " hook " +
                                             std::to_string(hook.value_or(~0u)) + " device " + dev.value_or("?") +
                                             " policy " + std::to_string(policy)}}});
    return ch;
}

void Decoder::netdev_message(const nlmsghdr* nlh, uint16_t type) {
    Attrs a = Attrs::of_message(nlh);
    switch (type) {
        case NFT_MSG_NEWTABLE:
            if (a.str(NFTA_TABLE_NAME) != fence::kTableName) return;
            rs_.netdev = fence::NetdevTable{};
            netdev_flags_ = a.u32(NFTA_TABLE_FLAGS).value_or(0);
            return;
        case NFT_MSG_DELTABLE:
            if (a.str(NFTA_TABLE_NAME) != fence::kTableName) return;
            rs_.netdev.reset();
            return;
        case NFT_MSG_NEWOBJ: {
            auto name = a.str(NFTA_OBJ_NAME);
            if (a.str(NFTA_OBJ_TABLE) != fence::kTableName || !name || a.u32(NFTA_OBJ_TYPE) != NFT_OBJECT_COUNTER)
                return;
            if (!rs_.netdev) malformed("counter of table netdev egress_fence before the table");
            Attrs data = a.nested(NFTA_OBJ_DATA);
            rs_.netdev->counters.push_back(
                {*name, data.u64(NFTA_COUNTER_PACKETS).value_or(0), data.u64(NFTA_COUNTER_BYTES).value_or(0)});
            return;
        }
        case NFT_MSG_NEWCHAIN: {
            auto name = a.str(NFTA_CHAIN_NAME);
            if (a.str(NFTA_CHAIN_TABLE) != fence::kTableName) return;
            if (!name) malformed("chain without a name");
            if (!rs_.netdev) malformed("chain of table netdev egress_fence before the table");
            rs_.netdev->chains.push_back(to_netdev_chain(*name, a));
            return;
        }
        case NFT_MSG_NEWRULE: {
            auto chain = a.str(NFTA_RULE_CHAIN);
            if (a.str(NFTA_RULE_TABLE) != fence::kTableName) return;
            if (!chain) malformed("rule without a chain");
            for (auto& c : rs_.netdev ? rs_.netdev->chains : no_chains_)
                if (c.name == *chain) {
                    c.rules.push_back({statements(expressions(a), {})});
                    return;
                }
            malformed("rule of unknown chain '" + *chain + "'");
        }
        // Sets are not part of the netdev table's model; a rule using one
        // shows up as unrecognized expressions.
        case NFT_MSG_NEWSET:
        case NFT_MSG_NEWSETELEM:
        case NFT_MSG_NEWGEN: return;
        default: malformed("unexpected nf_tables message " + std::to_string(type));
    }
}

fence::Ruleset Decoder::finish() {
    for (auto& s : rs_.sets) {
        auto it = readers_.find(s.name);
        if (it == readers_.end()) continue;
        s.elements = it->second.finish();  // canonical order
    }
    if (rs_.netdev && netdev_flags_)
        for (auto& c : rs_.netdev->chains)
            if (c.base)
                c.rules.insert(c.rules.begin(), {{fence::Unrecognized{"table flags " + std::to_string(netdev_flags_) +
                                                                      " (dormant: chains not evaluated)"}}});
    // A dormant table evaluates nothing: make that impossible to miss.
    if (table_flags_)
        for (auto& c : rs_.chains)
            if (c.base)
                c.rules.insert(c.rules.begin(), {{fence::Unrecognized{"table flags " + std::to_string(table_flags_) +
                                                                      " (dormant: chains not evaluated)"}}});
    return std::move(rs_);
}

}  // namespace

struct MessageDecoder::State {
    explicit State(bool read_set_count) : d(read_set_count) {}
    Decoder d;
};

MessageDecoder::MessageDecoder(bool read_set_count) : state_(std::make_unique<State>(read_set_count)) {}
MessageDecoder::~MessageDecoder() = default;

void MessageDecoder::message(const nlmsghdr* nlh) {
    if (nlh->nlmsg_len < sizeof(nlmsghdr)) malformed("truncated message");
    state_->d.message(nlh);
}

const std::vector<fence::Set>& MessageDecoder::sets() const { return state_->d.sets(); }

const std::vector<KernelSet>& MessageDecoder::kernel_sets() const { return state_->d.kernel_sets(); }

bool MessageDecoder::has_table() const { return state_->d.has_table(); }

fence::Ruleset MessageDecoder::finish() { return state_->d.finish(); }

fence::Ruleset decode_messages(const uint8_t* data, size_t len) {
    Decoder d;
    // Not mnl_nlmsg_ok(): it compares the length as a signed int, so a
    // length of 0xfffffffe passes.
    for (size_t off = 0; off < len;) {
        if (len - off < sizeof(nlmsghdr)) malformed("truncated message header");
        const auto* nlh = reinterpret_cast<const nlmsghdr*>(data + off);
        if (nlh->nlmsg_len < sizeof(nlmsghdr) || nlh->nlmsg_len > len - off) malformed("truncated message");
        d.message(nlh);
        off += std::min<size_t>(NLMSG_ALIGN(nlh->nlmsg_len), len - off);
    }
    return d.finish();
}

}  // namespace ef::nft
