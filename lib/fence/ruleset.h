// The abstract ruleset: the one model that ADD (compile -> apply), CHECK
// (compile, read back, compare) and `render` (compile -> text) share.
//
// It is a plain value: no I/O, equality by content. Statements are the closed
// set of things the compiler emits, at the level an admin reads in `nft list`
// (implicit dependencies such as `meta nfproto ipv4` before `ip daddr` are the
// encoder's business, not the model's). Anything the decoder cannot map back
// becomes an `Unrecognized` statement, which never equals a compiled one, so a
// tampered rule always shows up in a diff.
#pragma once

#include <algorithm>
#include <array>
#include <compare>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

namespace ef::fence {

// The bytes of one key field's value, big-endian: at most 16 (an IPv6
// address), held inline, so a set element costs no heap allocation (100,000
// of them are built, sorted, encoded, read back and compared in one ADD).
// Constructed and compared like std::vector<uint8_t>.
class Bytes {
  public:
    static constexpr size_t kMaxSize = 16;
    Bytes() = default;
    explicit Bytes(size_t n, uint8_t fill = 0) : n_(checked(n)) { std::memset(b_.data(), fill, n); }
    Bytes(std::initializer_list<uint8_t> v) : Bytes(v.begin(), v.end()) {}
    template <class It>
    requires(!std::is_integral_v<It>) Bytes(It first, It last)
        : n_(checked(static_cast<size_t>(std::distance(first, last)))) {
        std::copy(first, last, b_.begin());
    }
    size_t size() const { return n_; }
    bool empty() const { return n_ == 0; }
    uint8_t* data() { return b_.data(); }
    const uint8_t* data() const { return b_.data(); }
    uint8_t* begin() { return b_.data(); }
    uint8_t* end() { return b_.data() + n_; }
    const uint8_t* begin() const { return b_.data(); }
    const uint8_t* end() const { return b_.data() + n_; }
    uint8_t& operator[](size_t i) { return b_[i]; }
    uint8_t operator[](size_t i) const { return b_[i]; }
    bool operator==(const Bytes& o) const { return n_ == o.n_ && std::memcmp(b_.data(), o.b_.data(), n_) == 0; }
    // Lexicographic, a prefix first: for equal lengths, the order of the numbers.
    std::strong_ordering operator<=>(const Bytes& o) const {
        if (int c = std::memcmp(b_.data(), o.b_.data(), std::min(n_, o.n_)); c != 0)
            return c < 0 ? std::strong_ordering::less : std::strong_ordering::greater;
        return n_ <=> o.n_;
    }

  private:
    static uint8_t checked(size_t n) {
        if (n > kMaxSize) throw std::length_error("a set key field holds at most 16 bytes");
        return static_cast<uint8_t>(n);
    }
    std::array<uint8_t, kMaxSize> b_{};
    uint8_t n_ = 0;
};

// nftables datatypes used as set keys. Values are stored in the byte order the
// kernel keeps in interval sets: network order, uid included (nft converts
// skuid with a byteorder expression before the lookup).
enum class FieldType : uint8_t { ipv4_addr, ipv6_addr, inet_proto, inet_service, uid };

// Bytes one field's value occupies (4, 16, 1, 2, 4).
size_t field_len(FieldType t);
// nft's name for the type, e.g. "ipv4_addr".
const char* field_type_name(FieldType t);

// One field of a set element: an inclusive range [lo, hi]; lo == hi for a
// single value. Both have field_len(type) bytes.
struct FieldRange {
    Bytes lo;
    Bytes hi;
    bool operator==(const FieldRange&) const = default;
    // clang-tidy 14 reads the `0` of the rewritten `(a <=> b) < 0` as a null pointer.
    auto operator<=>(const FieldRange&) const = default;  // NOLINT(modernize-use-nullptr)
};

// The fields of an element, one per key field in key order: at most 3
// (address . protocol . port), held inline. Used like a std::vector.
class Fields {
  public:
    static constexpr size_t kMaxSize = 3;
    Fields() = default;
    Fields(std::initializer_list<FieldRange> v) {
        for (const auto& f : v) push_back(f);
    }
    size_t size() const { return n_; }
    bool empty() const { return n_ == 0; }
    void push_back(const FieldRange& f) {
        if (n_ == kMaxSize) throw std::length_error("a set key has at most 3 fields");
        f_[n_++] = f;
    }
    FieldRange& operator[](size_t i) { return f_[i]; }
    const FieldRange& operator[](size_t i) const { return f_[i]; }
    FieldRange* begin() { return f_.data(); }
    FieldRange* end() { return f_.data() + n_; }
    const FieldRange* begin() const { return f_.data(); }
    const FieldRange* end() const { return f_.data() + n_; }
    bool operator==(const Fields& o) const { return n_ == o.n_ && std::equal(begin(), end(), o.begin()); }
    std::strong_ordering operator<=>(const Fields& o) const {
        return std::lexicographical_compare_three_way(begin(), end(), o.begin(), o.end());
    }

  private:
    std::array<FieldRange, kMaxSize> f_{};
    uint8_t n_ = 0;
};

struct Element {
    Fields fields;  // one per key field, in key order
    bool operator==(const Element&) const = default;
    // clang-tidy 14 reads the `0` of the rewritten `(a <=> b) < 0` as a null pointer.
    auto operator<=>(const Element&) const = default;  // NOLINT(modernize-use-nullptr)
};

// A named set; a key with several fields is a concatenation (`ipv4_addr .
// inet_proto . inet_service`). With `flags interval` its elements may be
// ranges and the kernel keeps them in an rbtree (one field) or pipapo
// (concatenation); without, every field of an element is one value and the
// kernel keeps them in a hash table, O(1) to insert and to look up, sized
// for `size` elements (the most it accepts; 0: no size given).
struct Set {
    std::string name;
    std::vector<FieldType> key;
    bool interval = true;
    std::vector<Element> elements;  // canonical: sort_elements() order, no duplicates
    uint32_t size = 0;
    bool operator==(const Set&) const = default;
};

// Puts the elements of `s` in canonical order, the order `nft list` prints
// them, and drops duplicates. Interval sets and one-field hash sets:
// ascending. A concatenated hash set: nft sorts the key bytes (each field
// unpadded) read as one little-endian number, i.e. from the last byte.
void sort_elements(Set& s);

// Whether `a` comes before `b` in the canonical order of set `s`.
bool canonical_less(const Set& s, const Element& a, const Element& b);

// Whether `s`'s canonical order reads keys from their last byte (a
// concatenated hash set) rather than from their first.
inline bool sorts_from_last_byte(const Set& s) { return !s.interval && s.key.size() > 1; }

// The canonical order of `n` keys of one set without ranges (every field a
// single value), given as their fields' bytes concatenated unpadded, `len`
// bytes each, back to back: the indexes of the keys in sort_elements()
// order, equal keys next to each other. Linear (a byte-wise radix sort), so
// 100,000 elements are put in order without moving them around.
std::vector<uint32_t> key_order(const uint8_t* keys, size_t n, size_t len, bool from_last_byte);

// The element whose fields are the single values `bytes` holds for `key`
// (concatenated unpadded, as key_order takes them).
Element element_of(const std::vector<FieldType>& key, const uint8_t* bytes);

// A named counter object. Its values are reported but never compared.
struct Counter {
    std::string name;
    uint64_t packets = 0;
    uint64_t bytes = 0;
    bool operator==(const Counter& o) const { return name == o.name; }
};

enum class IpFamily : uint8_t { ipv4, ipv6 };

// --- statements -----------------------------------------------------------
// `oifname "lo"`
struct OifnameEq {
    std::string name;
    bool operator==(const OifnameEq&) const = default;
};
// `meta l4proto tcp`
struct L4ProtoEq {
    uint8_t proto;
    bool operator==(const L4ProtoEq&) const = default;
};
// `ct state established,related` (bits as in the kernel: NF_CT_STATE_BIT)
struct CtStateIn {
    uint32_t bits;
    bool operator==(const CtStateIn&) const = default;
};
// `icmpv6 type 133-136`
struct Icmpv6TypeRange {
    uint8_t lo;
    uint8_t hi;
    bool operator==(const Icmpv6TypeRange&) const = default;
};
// `meta skuid @set`
struct SkuidInSet {
    std::string set;
    bool operator==(const SkuidInSet&) const = default;
};
// `ip daddr @set` / `ip6 daddr @set`; with a mask_len, the address is cut to
// its first mask_len bits before the lookup (`ip daddr & 255.255.255.0 ==
// @set`), so a hash set of /24 networks matches every address in them.
// mask_len 0: the whole address.
struct DaddrInSet {
    IpFamily family;
    std::string set;
    uint8_t mask_len = 0;
    bool operator==(const DaddrInSet&) const = default;
};
// `ip daddr . meta l4proto . th dport @set` (and the ip6 twin); mask_len as
// above (`ip daddr & 255.255.255.0 . meta l4proto . th dport @set`).
struct DaddrProtoPortInSet {
    IpFamily family;
    std::string set;
    uint8_t mask_len = 0;
    bool operator==(const DaddrProtoPortInSet&) const = default;
};
// `ip daddr . meta l4proto @set` (and the ip6 twin), mask_len as above:
// followed by a ThDportRange, the lookup of a port-range group.
struct DaddrProtoInSet {
    IpFamily family;
    std::string set;
    uint8_t mask_len = 0;
    bool operator==(const DaddrProtoInSet&) const = default;
};
// `th dport 8000-8100` (`th dport 53` when lo == hi)
struct ThDportRange {
    uint16_t lo;
    uint16_t hi;
    bool operator==(const ThDportRange&) const = default;
};
// `counter name "x"`
struct CounterRef {
    std::string name;
    bool operator==(const CounterRef&) const = default;
};
enum class TimeUnit : uint8_t { second, minute, hour, day };
// `limit rate 5/second burst 10 packets`
struct Limit {
    uint64_t rate;
    TimeUnit unit;
    uint32_t burst;
    bool operator==(const Limit&) const = default;
};
// `log prefix "..." flags skuid`
struct Log {
    std::string prefix;
    bool operator==(const Log&) const = default;
};
enum class VerdictKind : uint8_t { accept, drop };
// `accept` / `drop`
struct Verdict {
    VerdictKind kind;
    bool operator==(const Verdict&) const = default;
};
enum class RejectKind : uint8_t { tcp_reset, icmpx_port_unreachable };
// `reject with tcp reset` / `reject` (icmpx port-unreachable, nft's default in inet)
struct Reject {
    RejectKind kind;
    bool operator==(const Reject&) const = default;
};
// What the decoder found but cannot map to a statement above; `text` describes
// the raw expressions. Never produced by the compiler.
struct Unrecognized {
    std::string text;
    bool operator==(const Unrecognized&) const = default;
};
// `meta secmark set 1162215424`: stamps the packet as having passed an inet
// chain. Only netfilter (or an LSM) writes skb->secmark; no socket option does.
struct SecmarkSet {
    uint32_t value;
    bool operator==(const SecmarkSet&) const = default;
};
// `meta secmark 1162215424`
struct SecmarkEq {
    uint32_t value;
    bool operator==(const SecmarkEq&) const = default;
};
// `ether type arp` (the EtherType in host order, e.g. 0x0806)
struct EtherTypeEq {
    uint16_t type;
    bool operator==(const EtherTypeEq&) const = default;
};

// `oifname != "lo"` / `iifname != "lo"`
struct OifnameNe {
    std::string name;
    bool operator==(const OifnameNe&) const = default;
};
struct IifnameNe {
    std::string name;
    bool operator==(const IifnameNe&) const = default;
};
// `meta skuid 0-4294967295`: true only when the packet carries a full socket
// that a process holds open (the kernel reads the UID from the socket's file,
// so its own control sockets, orphaned and TIME_WAIT sockets never match): the
// test for "sent by a process of the pod".
struct SkuidAny {
    bool operator==(const SkuidAny&) const = default;
};
// `fib saddr type != local`: the source is not an address of this netns.
struct FibSaddrNotLocal {
    bool operator==(const FibSaddrNotLocal&) const = default;
};
// `fib saddr . iif oif exists` / `missing`: whether a route back to the source
// leaves through the interface the packet came in on (strict reverse path).
struct FibSaddrIifOif {
    bool exists;
    bool operator==(const FibSaddrIifOif&) const = default;
};
enum class CtDir : uint8_t { original = 0, reply = 1 };
// `ct direction original` / `ct direction reply`
struct CtDirectionEq {
    CtDir dir;
    bool operator==(const CtDirectionEq&) const = default;
};
// `ct mark & 0x40000000 == 0x40000000`
struct CtMarkHas {
    uint32_t bits;
    bool operator==(const CtMarkHas&) const = default;
};
// `ct mark set ct mark | 0x40000000`
struct CtMarkOr {
    uint32_t bits;
    bool operator==(const CtMarkOr&) const = default;
};
// `goto refuse`
struct Goto {
    std::string chain;
    bool operator==(const Goto&) const = default;
};
// `ip6 hoplimit 255`
struct Ip6HopLimitEq {
    uint8_t value;
    bool operator==(const Ip6HopLimitEq&) const = default;
};
// `ip6 daddr ff02::/16`, `ip6 saddr ::` (len 128: one address)
struct Ip6AddrPrefix {
    bool source;
    Bytes addr;  // 16 bytes, the host bits zero
    uint8_t len;
    bool operator==(const Ip6AddrPrefix&) const = default;
};
// `ip saddr @set` / `ip6 saddr @set`
struct SaddrInSet {
    IpFamily family;
    std::string set;
    bool operator==(const SaddrInSet&) const = default;
};

using Stmt =
    std::variant<OifnameEq, L4ProtoEq, CtStateIn, Icmpv6TypeRange, SkuidInSet, DaddrInSet, DaddrProtoPortInSet,
                 CounterRef, Limit, Log, Verdict, Reject, Unrecognized, SecmarkSet, SecmarkEq, EtherTypeEq,
                 DaddrProtoInSet, ThDportRange, OifnameNe, IifnameNe, SkuidAny, FibSaddrNotLocal, FibSaddrIifOif,
                 CtDirectionEq, CtMarkHas, CtMarkOr, Goto, Ip6HopLimitEq, Ip6AddrPrefix, SaddrInSet>;

struct Rule {
    std::vector<Stmt> stmts;
    bool operator==(const Rule&) const = default;
};

// output/forward/prerouting: inet hooks; egress: the netdev egress hook of
// one device.
enum class Hook : uint8_t { output, forward, egress, prerouting };
enum class Policy : uint8_t { accept, drop };

struct BaseHook {
    Hook hook;
    int32_t priority = 0;
    Policy policy = Policy::drop;
    std::string device;  // the egress hook's interface; empty for inet hooks
    bool operator==(const BaseHook&) const = default;
};

struct Chain {
    std::string name;
    std::optional<BaseHook> base;  // nullopt: a regular (jump target) chain
    std::vector<Rule> rules;
    bool operator==(const Chain&) const = default;
};

// Who the table belongs to and what it should contain. Stored in the table's
// userdata (at most 256 bytes in the kernel; see nft/ for the encoding).
struct Metadata {
    std::string plugin_version;
    std::string profile;
    std::string pod_namespace;
    std::string pod_name;
    std::string container_id;
    std::string digest;         // digest(ruleset) of the body at compile time
    std::string annotated_uid;  // the exempt UID a pod annotation added ("" if none)
    bool operator==(const Metadata&) const = default;
};

inline constexpr const char* kTableName = "egress_fence";

// The table `netdev egress_fence` (DESIGN.md "Raw frames"): one base chain
// per fenced attachment, on the egress hook of its interface, which sees
// frames sent on AF_PACKET sockets that never pass the inet hooks. Its
// counters live in this table.
struct NetdevTable {
    std::vector<Counter> counters;
    std::vector<Chain> chains;  // base chains, hook egress, one device each
    bool operator==(const NetdevTable&) const = default;
};

// The table `inet egress_fence`: counters, sets and chains in canonical order
// (the order the compiler emits them, which is also the order nft lists them),
// and the companion `netdev egress_fence` table when the fence has one. Both
// tables are replaced in one transaction.
struct Ruleset {
    Metadata meta;
    std::vector<Counter> counters;
    std::vector<Set> sets;
    std::vector<Chain> chains;
    std::optional<NetdevTable> netdev;
    bool operator==(const Ruleset&) const = default;
};

// The ruleset in nft syntax, exactly as `nft list ruleset` prints the two
// tables (`nft list table inet egress_fence` then `nft list table netdev
// egress_fence`): tabs, element wrapping, counters' values as stored.
// Loads with `nft -f` except for the secmark statements: nft 1.0.6 lists
// `meta secmark set N` and `meta secmark N` but refuses to parse them (the
// first is taken for a reference to a secmark object, the second is refused
// as "Cannot be used with right hand side constant value"); `nft -j -f`
// accepts the JSON form of the first. Metadata goes in a leading `#` comment
// when `with_metadata` is set.
std::string to_nft_text(const Ruleset& rs, bool with_metadata = false);
// One statement / one rule in nft syntax, e.g. `meta l4proto tcp`.
std::string to_nft_text(const Stmt& s);
std::string to_nft_text(const Rule& r);
// A set element in nft syntax, e.g. `10.0.0.0/8 . tcp . 8000-8100`.
std::string to_nft_text(const Set& set, const Element& e);

// A stable digest (hex, 32 chars) of the body: counters' names, sets, chains.
// Metadata and counter values are not part of it.
std::string digest(const Ruleset& rs);

// SHA-256 of arbitrary bytes as 64 hex chars (digest() and the installer use it).
std::string sha256_hex(const std::string& data);

}  // namespace ef::fence
