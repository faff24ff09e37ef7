// The digest is stored in every fenced table's metadata and CHECK compares
// it: tables fenced by an earlier version must still pass CHECK after an
// upgrade, so its value for a given ruleset never changes. The values below
// were computed by the version that rendered the whole text and hashed it.
#include <doctest/doctest.h>
#include <string>

#include "config/values.h"
#include "fence/compile.h"

using namespace ef;
using namespace ef::fence;

namespace {

config::Cidr cidr(const std::string& s) {
    std::string why;
    auto c = config::parse_cidr(s, why);
    REQUIRE_MESSAGE(c, why);
    return *c;
}

config::AllowEntry entry(const std::string& c, config::Protocol p, std::vector<config::PortRange> ports = {}) {
    return config::AllowEntry{cidr(c), p, std::move(ports)};
}

// Every set layout: full-length and masked hash sets, port-range groups,
// `any` sets, both interval sets (overlapping entries cut into pieces, more
// groups than get a hash set), the uid set, and many elements, so element
// lists wrap and hash sets sort from the last byte.
config::Profile every_layout() {
    using config::Protocol;
    config::Profile p;
    p.name = "every-layout";
    p.exempt_uids = {1337, 4000, 65000};
    p.allow = {entry("10.96.0.10/32", Protocol::udp, {{53, 53}}),
               entry("fd00:10:96::a/128", Protocol::tcp, {{53, 53}, {8000, 8100}}),
               entry("10.0.0.0/8", Protocol::tcp, {{443, 8443}}),
               entry("10.1.0.0/16", Protocol::tcp, {{80, 443}}),
               entry("0.0.0.0/0", Protocol::udp, {{123, 123}}),
               entry("192.168.7.0/24", Protocol::any),
               entry("192.168.8.0/23", Protocol::any),
               entry("172.16.0.0/12", Protocol::any),
               entry("::/0", Protocol::any),
               entry("fd00:aa::/32", Protocol::any),
               entry("fd00:1::/64", Protocol::sctp, {{9000, 9000}, {9100, 9200}})};
    for (int i = 0; i < 40; ++i) {
        std::string a = "100.64." + std::to_string(i / 7) + "." + std::to_string(i * 37 % 256);
        p.allow.push_back(entry(a + "/32", Protocol::tcp, {{443, 443}, {uint16_t(1000 + i), uint16_t(1000 + i)}}));
        p.allow.push_back(entry("fd00:" + std::to_string(100 + i) + "::1/128", Protocol::udp, {{53, 53}}));
    }
    for (int len = 16; len <= 29; ++len)  // more prefix lengths than hash sets
        p.allow.push_back(entry("100.70.0.0/" + std::to_string(len), Protocol::tcp, {{22, 22}}));
    p.log = config::LogSpec{};
    return p;
}

config::Pod pod() { return config::Pod{"sandboxes", "agent-1", "c0ffee", "uid-1", {}}; }

}  // namespace

TEST_CASE("the digest of a fixed ruleset keeps its value across versions") {
    config::Profile p = every_layout();
    Ruleset rs = compile(p, pod());
    CHECK(rs.sets.size() > 10);
    CHECK(rs.meta.digest == "29f844f5b0507de05d70dc85ed8e3bf5");
    CHECK(to_nft_text(rs).size() > 2 * 4096);  // hashed in several pieces
    CHECK(digest(rs) == "29f844f5b0507de05d70dc85ed8e3bf5");
    // The text it hashes, whole: the same bytes `render` prints.
    CHECK(sha256_hex(to_nft_text(rs)) == "29f844f5b0507de05d70dc85ed8e3bf54c3645372da57a03c81e0d94451c5275");

    p.mode = config::Mode::audit;
    p.tcp_deny = config::TcpDeny::drop;
    p.log.reset();
    p.exempt_uids.clear();
    CHECK(compile(p, pod(), {{"net1", {}}}).meta.digest == "704a25dc7259b8e757bce777374f27d3");

    config::Profile empty;
    empty.name = "empty";
    CHECK(compile(empty, pod()).meta.digest == "6b567a943f5df1768e28e6a2f64e58a8");
}

TEST_CASE("the digest ignores counter values and metadata, as the text form did") {
    Ruleset rs = compile(every_layout(), pod());
    const std::string d = digest(rs);
    rs.counters[0].packets = 12345;
    rs.counters[1].bytes = 99;
    rs.netdev->counters[0].packets = 7;
    rs.meta.pod_name = "another";
    rs.meta.digest.assign(1, 'x');  // not = "x": GCC 12's false -Wrestrict (bug 105329) at -O3
    CHECK(digest(rs) == d);
}
