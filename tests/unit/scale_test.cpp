// Large allow lists (issue 14): the canonical order reached without
// comparison sorts, CHECK's diff at 100,000 elements, the read-back's decoder,
// and the kernel's refusal of one element among many named precisely.
#include <arpa/inet.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include <doctest/doctest.h>
#include <algorithm>
#include <cstring>
#include <random>
#include <string>

#include "fence/compile.h"
#include "fence/diff.h"
#include "nft/elements.h"
#include "nft/nft.h"

using namespace ef;
using namespace ef::fence;

namespace {

// sort_elements as it was written first: a comparison sort with the
// canonical comparator, then duplicates dropped. The reference.
void reference_sort(Set& s) {
    std::sort(s.elements.begin(), s.elements.end(),
              [&s](const Element& a, const Element& b) { return canonical_less(s, a, b); });
    s.elements.erase(std::unique(s.elements.begin(), s.elements.end()), s.elements.end());
}

// An element of `key` with single values drawn from few distinct bytes (so
// duplicates and long shared prefixes and suffixes occur), or ranges.
Element random_element(std::mt19937& rng, const std::vector<FieldType>& key, bool ranges) {
    Element e;
    for (FieldType t : key) {
        Bytes lo(field_len(t)), hi(field_len(t));
        for (size_t i = 0; i < lo.size(); ++i) lo[i] = hi[i] = uint8_t(rng() % 3 == 0 ? rng() % 4 : 0);
        if (ranges && rng() % 2) hi[hi.size() - 1] = 0xff;
        e.fields.push_back({lo, hi});
    }
    return e;
}

config::AllowEntry exact_entry(uint32_t i, uint16_t port) {
    config::AllowEntry e;
    e.cidr.prefix = 32;
    uint32_t a = htonl(0x64400000u + i * 8);  // 100.64.0.0 + 8i
    std::memcpy(e.cidr.addr.data(), &a, 4);
    e.protocol = config::Protocol::tcp;
    e.ports = {{port, port}};
    return e;
}

config::Pod pod() { return config::Pod{"sandboxes", "agent-1", "c0ffee", "uid-1", {}}; }

const Set& set_named(const Ruleset& rs, const std::string& name) {
    for (const auto& s : rs.sets)
        if (s.name == name) return s;
    FAIL("no set " << name);
    return rs.sets.front();
}

}  // namespace

TEST_CASE("sort_elements puts every kind of set in the canonical order of the comparison sort") {
    std::mt19937 rng(14);  // NOLINT(cert-msc32-c,cert-msc51-cpp): a fixed seed, reproducible
    const std::vector<std::vector<FieldType>> keys = {
        {FieldType::ipv4_addr, FieldType::inet_proto, FieldType::inet_service},
        {FieldType::ipv6_addr, FieldType::inet_proto, FieldType::inet_service},
        {FieldType::ipv4_addr, FieldType::inet_proto},
        {FieldType::ipv6_addr},
        {FieldType::ipv4_addr},
        {FieldType::uid},
    };
    for (int round = 0; round < 200; ++round) {
        const auto& key = keys[rng() % keys.size()];
        const bool interval = rng() % 2, ranges = interval && rng() % 2;
        Set s{"s", key, interval, {}, 0};
        for (size_t n = rng() % 300; n-- > 0;) s.elements.push_back(random_element(rng, key, ranges));
        Set want = s;
        reference_sort(want);
        sort_elements(s);
        CHECK(s == want);
    }
}

TEST_CASE("100,000 exact entries compile to one hash set in canonical order, each element once") {
    config::Profile p;
    p.name = "large";
    for (uint32_t i = 0; i < 100000; ++i) p.allow.push_back(exact_entry(i, 443));
    p.allow.push_back(exact_entry(7, 443));  // a duplicate
    p.allow.push_back(exact_entry(7, 80));   // another port: the same set
    Ruleset rs = compile(p, pod());
    REQUIRE(rs.sets.size() == 1);
    const Set& s = set_named(rs, "allow4");
    CHECK(s.elements.size() == 100001);
    CHECK(s.size == 131072);
    Set want = s;
    std::mt19937 rng(1);  // NOLINT(cert-msc32-c,cert-msc51-cpp): a fixed seed, reproducible
    std::shuffle(want.elements.begin(), want.elements.end(), rng);
    reference_sort(want);
    CHECK(s == want);
    // Encoded and decoded back (the read-back's path): the same ruleset.
    auto batch = nft::encode_batch(rs, 1);
    CHECK(nft::decode_messages(batch.data(), batch.size()) == rs);
}

TEST_CASE("CHECK's diff names the one element changed among 100,000, in any order") {
    config::Profile p;
    p.name = "large";
    for (uint32_t i = 0; i < 100000; ++i) p.allow.push_back(exact_entry(i, 443));
    const Ruleset expected = compile(p, pod());
    Ruleset actual = expected;
    CHECK(diff(expected, actual).empty());
    Set& s = actual.sets[0];
    std::reverse(s.elements.begin(), s.elements.end());  // not assumed sorted
    CHECK(diff(expected, actual).empty());
    // One removed, one added.
    auto gone = std::find(s.elements.begin(), s.elements.end(), set_named(expected, "allow4").elements[31337]);
    REQUIRE(gone != s.elements.end());
    const std::string gone_text = to_nft_text(s, *gone);
    s.elements.erase(gone);
    CHECK(diff(expected, actual) == std::vector<std::string>{"set allow4: missing element `" + gone_text + "`"});
    config::Profile other;
    other.allow = {exact_entry(1, 444)};
    s.elements.push_back(compile(other, pod()).sets[0].elements[0]);
    CHECK(diff(expected, actual) ==
          std::vector<std::string>{"set allow4: missing element `" + gone_text + "`",
                                   "set allow4: unexpected element `100.64.0.8 . tcp . 444`"});
}

namespace {

// The element nests of a NEWSETELEM message, in order.
std::vector<const nlattr*> element_nests(const nlmsghdr* msg) {
    auto next = [](const nlattr* a) {
        return reinterpret_cast<const nlattr*>(reinterpret_cast<const uint8_t*>(a) + NLA_ALIGN(a->nla_len));
    };
    const auto* end = reinterpret_cast<const uint8_t*>(msg) + msg->nlmsg_len;
    const nlattr* list = nullptr;
    for (const auto* a =
             reinterpret_cast<const nlattr*>(reinterpret_cast<const uint8_t*>(msg) + NLMSG_HDRLEN + sizeof(nfgenmsg));
         reinterpret_cast<const uint8_t*>(a) < end; a = next(a))
        if ((a->nla_type & NLA_TYPE_MASK) == NFTA_SET_ELEM_LIST_ELEMENTS) list = a;
    std::vector<const nlattr*> out;
    if (!list) return out;
    const auto* list_end = reinterpret_cast<const uint8_t*>(list) + list->nla_len;
    for (const auto* a = reinterpret_cast<const nlattr*>(reinterpret_cast<const uint8_t*>(list) + NLA_HDRLEN);
         reinterpret_cast<const uint8_t*>(a) < list_end; a = next(a))
        out.push_back(a);
    return out;
}

}  // namespace

TEST_CASE("a set's elements go in as few messages as the kernel takes, and a refused one is named") {
    config::Profile p;
    p.name = "large";
    for (uint32_t i = 0; i < 30000; ++i) p.allow.push_back(exact_entry(i, 443));
    Ruleset rs = compile(p, pod());
    const Set& s = set_named(rs, "allow4");
    auto batch = nft::encode_batch(rs, 1);
    std::vector<const nlmsghdr*> msgs;
    for (size_t off = 0; off < batch.size();) {
        const auto* nlh = reinterpret_cast<const nlmsghdr*>(batch.data() + off);
        if (NFNL_SUBSYS_ID(nlh->nlmsg_type) == NFNL_SUBSYS_NFTABLES &&
            NFNL_MSG_TYPE(nlh->nlmsg_type) == NFT_MSG_NEWSETELEM)
            msgs.push_back(nlh);
        off += NLMSG_ALIGN(nlh->nlmsg_len);
    }
    // The element list is one attribute of at most 64 KiB (a 16-bit length):
    // 24 bytes per element of ipv4_addr . inet_proto . inet_service, every
    // message but the last within 64 bytes of full.
    size_t total = 0;
    for (size_t i = 0; i < msgs.size(); ++i) {
        size_t n = element_nests(msgs[i]).size();
        total += n;
        if (i + 1 < msgs.size()) CHECK(n * 24 > 65535 - 64 - 4);
    }
    CHECK(total == s.elements.size());
    CHECK(msgs.size() == (30000 * 24) / (65535 - 64) + 1);

    // The kernel reports the nest of the element it refused by its offset in
    // the message: the 1000th element of the second message.
    const size_t before = element_nests(msgs[0]).size();
    const nlattr* nest = element_nests(msgs[1])[999];
    const auto offset = static_cast<uint32_t>(reinterpret_cast<const uint8_t*>(nest) -
                                              reinterpret_cast<const uint8_t*>(msgs[1]));
    // Appended, not "`" + string: GCC 12's false -Wrestrict (bug 105329) at -O3.
    std::string want = "`";
    want += to_nft_text(s, s.elements[before + 999]);
    want += '`';
    CHECK(nft::element_at(rs, msgs[1], offset) == want);
    CHECK(nft::element_at(rs, msgs[1], offset + 4).empty());  // no element starts there
}
