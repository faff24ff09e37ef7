// How ADD and CHECK read sets back (lib/nft/readback.h), without a kernel:
// what a GETSET reply of Linux 6.16+ says about each set (recorded on this
// project's 6.18 kernel), the same reply as an older kernel sends it (no
// NFTA_SET_TYPE, no NFTA_SET_COUNT), which sets are dumped, counted or looked
// up, and how a lookup's reply is judged.
#include <doctest/doctest.h>

#include <libmnl/libmnl.h>
#include <libnftnl/common.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "fence/allow_sets.h"
#include "nft/codec.h"
#include "nft/elements.h"
#include "nft/readback.h"
#include "nft_sample.h"

using namespace ef;
using namespace ef::fence;
using namespace ef::nft_sample;

namespace {

// The GETSET dump of table inet egress_fence holding
//   set exempt_uids { type uid; flags interval; elements = { 1337 } }
//   set allow4 { type ipv4_addr . inet_proto . inet_service; size 16;
//                elements = { 10.0.0.1 . tcp . 443, 10.0.0.2 . tcp . 443, 10.0.0.3 . udp . 53 } }
// as Linux 6.18 sent it (nft created the table; tests/probe's raw GETSET).
// Rows of 12 bytes, as recorded, not one byte a line.
// clang-format off
const std::vector<uint8_t> kGetsetReply = {
    // message of 140 bytes
    0x8c, 0x00, 0x00, 0x00, 0x09, 0x0a, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00,
    0xcd, 0x47, 0x00, 0x00, 0x01, 0x00, 0x00, 0x02, 0x11, 0x00, 0x01, 0x00,
    0x65, 0x67, 0x72, 0x65, 0x73, 0x73, 0x5f, 0x66, 0x65, 0x6e, 0x63, 0x65,
    0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x02, 0x00, 0x65, 0x78, 0x65, 0x6d,
    0x70, 0x74, 0x5f, 0x75, 0x69, 0x64, 0x73, 0x00, 0x0c, 0x00, 0x10, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x03, 0x00,
    0x00, 0x00, 0x00, 0x04, 0x08, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x18,
    0x08, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x04, 0x0a, 0x00, 0x0d, 0x00,
    0x00, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x09, 0x00,
    0x17, 0x00, 0x13, 0x00, 0x30, 0x78, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66,
    0x66, 0x66, 0x38, 0x32, 0x35, 0x30, 0x36, 0x37, 0x61, 0x30, 0x00, 0x00,
    0x08, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x01,
    // message of 144 bytes
    0x90, 0x00, 0x00, 0x00, 0x09, 0x0a, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00,
    0xcd, 0x47, 0x00, 0x00, 0x01, 0x00, 0x00, 0x02, 0x11, 0x00, 0x01, 0x00,
    0x65, 0x67, 0x72, 0x65, 0x73, 0x73, 0x5f, 0x66, 0x65, 0x6e, 0x63, 0x65,
    0x00, 0x00, 0x00, 0x00, 0x0b, 0x00, 0x02, 0x00, 0x61, 0x6c, 0x6c, 0x6f,
    0x77, 0x34, 0x00, 0x00, 0x0c, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x02, 0x08, 0x00, 0x04, 0x00, 0x00, 0x00, 0x73, 0x0d,
    0x08, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x14, 0x00, 0x0d, 0x00,
    0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x03, 0x08, 0x00, 0x04, 0x0d, 0x00,
    0x00, 0x00, 0x01, 0x00, 0x0c, 0x00, 0x09, 0x00, 0x08, 0x00, 0x01, 0x00,
    0x00, 0x00, 0x00, 0x10, 0x17, 0x00, 0x13, 0x00, 0x30, 0x78, 0x66, 0x66,
    0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x38, 0x32, 0x35, 0x30, 0x36, 0x35,
    0x34, 0x30, 0x00, 0x00, 0x08, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x03,
};
// clang-format on

// Each message of `bytes` with every attribute of type `drop` removed, as a
// kernel that does not know them sends the reply.
std::vector<uint8_t> without_attrs(const std::vector<uint8_t>& bytes, std::vector<uint16_t> drop) {
    std::vector<uint8_t> out;
    for (size_t off = 0; off < bytes.size();) {
        const auto* nlh = reinterpret_cast<const nlmsghdr*>(bytes.data() + off);
        const size_t start = out.size();
        const auto* p = reinterpret_cast<const uint8_t*>(nlh);
        out.insert(out.end(), p, p + NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(nfgenmsg)));
        nft::for_each_attr(nlh, sizeof(nfgenmsg), [&](const nlattr* a) {
            if (std::find(drop.begin(), drop.end(), mnl_attr_get_type(a)) != drop.end()) return;
            const auto* q = reinterpret_cast<const uint8_t*>(a);
            out.insert(out.end(), q, q + MNL_ALIGN(a->nla_len));
        });
        const auto len = static_cast<uint32_t>(out.size() - start);
        std::memcpy(out.data() + start, &len, sizeof len);
        off += NLMSG_ALIGN(nlh->nlmsg_len);
    }
    return out;
}

std::vector<nft::KernelSet> kernel_sets_of(const std::vector<uint8_t>& reply, bool read_count = true) {
    nft::MessageDecoder d(read_count);
    for (size_t off = 0; off < reply.size();) {
        const auto* nlh = reinterpret_cast<const nlmsghdr*>(reply.data() + off);
        d.message(nlh);
        off += NLMSG_ALIGN(nlh->nlmsg_len);
    }
    REQUIRE(d.sets().size() == d.kernel_sets().size());
    return d.kernel_sets();
}

// A hash set of `n` allow entries `100.64.x.y/32 tcp 443`, as the compiler lays it out.
Set hash_set(size_t n) {
    std::vector<config::AllowEntry> allow;
    for (size_t i = 0; i < n; ++i) {
        config::AllowEntry e;
        e.cidr.addr[0] = 100;
        e.cidr.addr[1] = static_cast<uint8_t>(64 + i / 65536);
        e.cidr.addr[2] = static_cast<uint8_t>(i / 256);
        e.cidr.addr[3] = static_cast<uint8_t>(i);
        e.cidr.prefix = 32;
        e.protocol = config::Protocol::tcp;
        e.ports = {{443, 443}};
        allow.push_back(e);
    }
    auto sets = allow_sets(allow);
    REQUIRE(sets.size() == 1);
    return sets[0].set;
}

Set definition(const Set& s) { return Set{s.name, s.key, s.interval, {}, s.size}; }

}  // namespace

TEST_CASE("a Linux 6.16+ GETSET reply carries each set's element count and backend; an older one neither") {
    const auto sets = kernel_sets_of(kGetsetReply);
    REQUIRE(sets.size() == 2);
    CHECK(sets[0].name == "exempt_uids");
    CHECK(sets[1].name == "allow4");
    // The rbtree counts half its bounds: start and end of 1337, one "element".
    CHECK(sets[0].count == 1u);
    CHECK(sets[1].count == 3u);
    // Without CONFIG_KALLSYMS_ALL the kernel's "%ps" of the backend is an address.
    CHECK(sets[1].backend.starts_with("0x"));
    CHECK(sets[0].backend != sets[1].backend);

    const auto old = kernel_sets_of(without_attrs(kGetsetReply, {nft::kNftaSetType, nft::kNftaSetCount}));
    REQUIRE(old.size() == 2);
    CHECK_FALSE(old[1].count.has_value());
    CHECK(old[1].backend.empty());
    // The test-only switch reads a new kernel's reply as an old one.
    CHECK_FALSE(kernel_sets_of(kGetsetReply, false)[1].count.has_value());
}

TEST_CASE("which sets ADD counts, CHECK looks up, and both dump") {
    const Set large = hash_set(5000), small = hash_set(100);
    REQUIRE(nft::dump_bytes(large) > nft::kOneDumpChunk);
    REQUIRE(nft::dump_bytes(small) <= nft::kOneDumpChunk);
    const nft::KernelSet counted{large.name, 5000, "0xffffffff82506540"}, uncounted{large.name, std::nullopt, ""};
    using nft::ElementRead;
    CHECK(nft::plan_elements(&large, definition(large), counted, false) == ElementRead::count);
    CHECK(nft::plan_elements(&large, definition(large), counted, true) == ElementRead::lookup);
    // A kernel before 6.16 reports no count: every element is read back.
    CHECK(nft::plan_elements(&large, definition(large), uncounted, false) == ElementRead::dump);
    CHECK(nft::plan_elements(&large, definition(large), uncounted, true) == ElementRead::dump);
    // One dump chunk is as cheap as a count.
    CHECK(nft::plan_elements(&small, definition(small), {small.name, 100, ""}, false) == ElementRead::dump);
    // A set the fence does not have, or one defined otherwise, is read as it is.
    CHECK(nft::plan_elements(nullptr, definition(large), counted, true) == ElementRead::dump);
    Set other = definition(large);
    other.size = 1u << 20;
    CHECK(nft::plan_elements(&large, other, counted, true) == ElementRead::dump);
    // One field with intervals: the kernel's count of an rbtree proves nothing.
    Set uids = uid_set("exempt_uids", {});
    for (uint32_t uid = 1; uid <= 5000; ++uid) uids.elements.push_back({{range(be32(2 * uid), be32(2 * uid))}});
    REQUIRE(nft::dump_bytes(uids) > nft::kOneDumpChunk);
    CHECK(nft::plan_elements(&uids, definition(uids), {uids.name, 5000, ""}, false) == ElementRead::dump);
}

namespace {

// A NEWSETELEM message holding `e` of `set` as the kernel answers a lookup.
std::vector<uint8_t> reply_of(const Set& set, const Element& e) {
    Set one = set;
    one.elements = {e};
    std::vector<char> buf(8192);
    nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buf.data(), NFT_MSG_NEWSETELEM, nft::kFamily, 0, 1);
    mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, kTableName);
    mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, set.name.c_str());
    nft::ElementWriter w(one);
    w.fill(nlh);
    return {buf.begin(), buf.begin() + nlh->nlmsg_len};
}

bool holds(const Set& set, const Element& asked, const Element& answered) {
    auto r = reply_of(set, answered);
    return nft::reply_holds(set, asked, reinterpret_cast<const nlmsghdr*>(r.data()));
}

}  // namespace

TEST_CASE("a lookup's reply proves the element only when it is exactly that element") {
    const Set hash = hash_set(3);
    CHECK(holds(hash, hash.elements[1], hash.elements[1]));
    CHECK_FALSE(holds(hash, hash.elements[1], hash.elements[2]));
    // A concatenation with intervals (pipapo): the kernel answers with the
    // element holding the key asked for; it must be the one asked for.
    Set ranges{"allow4_ranges", {FieldType::ipv4_addr, FieldType::inet_proto, FieldType::inet_service}, true, {}, 0};
    const Element narrow{{range(v4("10.0.0.0"), v4("10.0.0.255")), one(u8(6)), range(be16(80), be16(90))}};
    const Element wide{{range(v4("10.0.0.0"), v4("10.0.255.255")), one(u8(6)), range(be16(80), be16(90))}};
    CHECK(holds(ranges, narrow, narrow));
    CHECK_FALSE(holds(ranges, narrow, wide));
    // A reply of no element, or of the wrong kind, proves nothing.
    std::vector<char> buf(4096);
    nlmsghdr* empty = nftnl_nlmsg_build_hdr(buf.data(), NFT_MSG_NEWSETELEM, nft::kFamily, 0, 1);
    CHECK_FALSE(nft::reply_holds(hash, hash.elements[0], empty));
}

TEST_CASE("a backend the kernel names must be of the kind the set needs; an address names none") {
    const Set hash = hash_set(3);
    Set uids = uid_set("exempt_uids", {});
    Set ranges{"allow4_ranges", {FieldType::ipv4_addr, FieldType::inet_proto, FieldType::inet_service}, true, {}, 0};
    auto why = [](const Set& s, const char* backend) { return nft::backend_mismatch(s, {s.name, 1, backend}); };
    for (const char* b : {"nft_set_hash_type", "nft_set_hash_fast_type", "nft_set_rhash_type", "nft_set_bitmap_type"}) {
        CAPTURE(b);
        CHECK(why(hash, b).empty());
        CHECK_FALSE(why(uids, b).empty());
        CHECK_FALSE(why(ranges, b).empty());
    }
    CHECK(why(uids, "nft_set_rbtree_type").empty());
    CHECK(why(ranges, "nft_set_pipapo_avx2_type").empty());
    CHECK(why(ranges, "nft_set_pipapo_type").empty());
    CHECK(why(hash, "nft_set_rbtree_type") ==
          "set allow4 is held in the kernel's nft_set_rbtree_type, not in a hash backend");
    CHECK(why(hash, "0xffffffff82506540").empty());
    CHECK(why(hash, "").empty());
}
