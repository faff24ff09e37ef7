// The JSON reader (lib/config/json_read.h, simdjson with nlohmann's parser
// for the texts simdjson refuses): what it accepts and refuses, against
// nlohmann's parser on tricky inputs (the fuzz target's differential,
// tests/fuzz/targets.h), and the plugin stdin's allow path against the
// document path.
#include "config/json_read.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "../fuzz/targets.h"
#include "cni/error.h"
#include "config/validate_parts.h"

using nlohmann::json;
using namespace ef::config;

namespace {

// read_json's error message; "" when it accepts.
std::string refusal(std::string_view text) {
    try {
        (void)read_json(text);
    } catch (const ef::cni::Error& e) {
        CHECK(e.code == ef::cni::kDecodeFailure);
        return e.msg;
    }
    return "";
}

void differential(std::string_view text) {
    CAPTURE(text);
    CHECK_NOTHROW(ef::fuzz::json_reader(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
}

}  // namespace

TEST_CASE("read_json agrees with nlohmann on tricky inputs") {
    const std::string cases[] = {"",
                                 " ",
                                 "1",
                                 " \t\r\n1\n",
                                 "\f1",
                                 "\v1",
                                 "1 2",
                                 "[1,]",
                                 "[,1]",
                                 "{\"a\":1,}",
                                 "{,}",
                                 "{\"a\" 1}",
                                 "{1:2}",
                                 "[1 2]",
                                 "[",
                                 "]",
                                 "{",
                                 "}",
                                 "[[[]]]",
                                 R"({"a":{"b":[]}})",
                                 "\"abc",
                                 R"("a""b")",
                                 "tru",
                                 "true",
                                 "truex",
                                 "nul",
                                 "null",
                                 "nulll",
                                 "false",
                                 "FALSE",
                                 "01",
                                 "-01",
                                 "-",
                                 "-a",
                                 "1.",
                                 ".5",
                                 "1.5",
                                 "1e",
                                 "1e+",
                                 "1E-2",
                                 "1e400",
                                 "-1e400",
                                 "1e-400",
                                 "0.0",
                                 "-0",
                                 "-0.0",
                                 "18446744073709551615",
                                 "18446744073709551616",
                                 "-9223372036854775808",
                                 "-9223372036854775809",
                                 "123456789012345678901234567890",
                                 "1.7976931348623157e308",
                                 R"("\u0000")",
                                 R"("\u00e9\u20AC")",
                                 R"("\ud83d\ude00")",
                                 R"("\ud800")",
                                 R"("\udc00")",
                                 R"("\ud800\u0041")",
                                 R"("\ud800\")",
                                 R"("\u12")",
                                 R"("\u12G4")",
                                 R"("\x")",
                                 R"("\/\b\f\n\r\t\"\\")",
                                 "\"a\tb\"",
                                 "\"a\nb\"",
                                 std::string("\"a\0b\"", 5),
                                 std::string("\0", 1),
                                 "\"\x7f\"",
                                 "\"\xc3\xa9\"",
                                 "\"\xc0\x80\"",
                                 "\"\xc1\xbf\"",
                                 "\"\xe0\x80\x80\"",
                                 "\"\xe0\xa0\x80\"",
                                 "\"\xed\x9f\xbf\"",
                                 "\"\xed\xa0\x80\"",
                                 "\"\xef\xbf\xbf\"",
                                 "\"\xf0\x8f\xbf\xbf\"",
                                 "\"\xf0\x90\x80\x80\"",
                                 "\"\xf4\x8f\xbf\xbf\"",
                                 "\"\xf4\x90\x80\x80\"",
                                 "\"\xf5\x80\x80\x80\"",
                                 "\"\xff\"",
                                 "\"\x80\"",
                                 "\"\xc3\"",
                                 "\"\xe2\x82\"",
                                 "\xEF\xBB\xBF{}",
                                 "\xEF\xBB{}",
                                 " \xEF\xBB\xBF{}",
                                 R"({"a":1,"a":2})",
                                 R"({"a":1,"b":{"a":2}})",
                                 R"({"a":1,"a":)",
                                 std::string("[1]\0", 4),
                                 R"({"\u0061":1,"a":2})",
                                 "[true,false,null,{},[],\"\",0]",
                                 std::string(64, '[') + std::string(64, ']'),
                                 std::string(65, '[') + std::string(65, ']'),
                                 "[\"" + std::string(100, '[') + "\"," + std::string(63, '[') + std::string(64, ']'),
                                 std::string(70, '[') + "x"};
    for (const auto& text : cases) differential(text);
}

TEST_CASE("read_json agrees with nlohmann on every config of the corpus, good and bad") {
    size_t n = 0;
    for (const char* dir : {"tests/corpus/netconf/good", "tests/corpus/netconf/bad", "tests/fuzz/corpus/fuzz_netconf"})
        for (const auto& e : std::filesystem::directory_iterator(std::filesystem::path(EF_SOURCE_DIR) / dir)) {
            std::ifstream in(e.path(), std::ios::binary);
            const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
            differential(text);
            ++n;
        }
    CHECK(n > 200);
}

TEST_CASE("read_json: strict RFC 8259, with nlohmann's number types") {
    CHECK(read_json("18446744073709551615").is_number_unsigned());
    // Beyond 64 bits simdjson refuses; nlohmann's reading makes it a float, as before.
    CHECK(read_json("18446744073709551616").is_number_float());
    CHECK(read_json("[1, 18446744073709551616]")[1].get<double>() == 18446744073709551616.0);
    CHECK(read_json("-9223372036854775808").is_number_integer());
    CHECK(read_json("-9223372036854775809").is_number_float());
    CHECK(read_json("-1").is_number_integer());
    CHECK(read_json("0").is_number_unsigned());
    CHECK(read_json("-0") == 0);
    CHECK(read_json("1.0").is_number_float());
    CHECK(read_json("1e-400").get<double>() == 0.0);
    CHECK(read_json("\"\\ud83d\\ude00\"").get<std::string>() == "\xf0\x9f\x98\x80");
    CHECK(read_json("\xEF\xBB\xBF 1") == 1);  // a byte-order mark is skipped at the start only
    CHECK(refusal(" \xEF\xBB\xBF 1").starts_with("input is not valid JSON (byte 2): "));
    for (const char* bad : {R"("\ud800")", R"("\udc00")", "\"\xc0\x80\"", "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"",
                            "\"a\x01\"", "\f1", "01", "[1,]", "1 2", "", "1e400", R"("\u00")", "nul"}) {
        CAPTURE(bad);
        CHECK(refusal(bad).starts_with("input is not valid JSON (byte "));
    }
    // The byte and the words are nlohmann's.
    CHECK(refusal("[1,]") ==
          "input is not valid JSON (byte 4): syntax error while parsing value - unexpected ']'; expected '[', '{', or "
          "a literal");
    CHECK(refusal("{\"a\" 1}") ==
          "input is not valid JSON (byte 6): syntax error while parsing object separator - unexpected number literal; "
          "expected ':'");
    CHECK(refusal("[1e400]") == "input is not valid JSON (byte 6): number overflow parsing '1e400'");
    CHECK(refusal("\"ab") ==
          "input is not valid JSON (byte 4): syntax error while parsing value - invalid string: missing closing quote; "
          "last read: '\"ab'");
    // What nlohmann quotes of the input is shown as ASCII (the message goes
    // into a JSON error object) and cut short.
    CHECK(refusal("[\"\xff\"]") ==
          "input is not valid JSON (byte 3): syntax error while parsing value - invalid string: ill-formed UTF-8 byte; "
          "last read: '\"<0xFF>'");
    const std::string long_bad = "\"" + std::string(100000, 'a') + "\x01\"";
    const std::string msg = refusal(long_bad);
    CHECK(
        msg.starts_with("input is not valid JSON (byte 100002): syntax error while parsing value - invalid string: "
                        "control character U+0001 (SOH) must be escaped"));
    CHECK(msg.size() < 300);
    CHECK(msg.ends_with("..."));
}

TEST_CASE("read_json: a NUL byte is refused, where nlohmann took it for the end of the input") {
    CHECK(refusal(std::string("[1]\0", 4)) == "input is not valid JSON (byte 4): a NUL byte after the JSON value");
    CHECK(refusal(std::string("{} \0 {}", 7)) == "input is not valid JSON (byte 4): a NUL byte after the JSON value");
    CHECK(refusal(std::string("[1,\0]", 5)).starts_with("input is not valid JSON (byte 4): "));
    CHECK(refusal(std::string("\"a\0\"", 4)).starts_with("input is not valid JSON (byte 3): "));
}

TEST_CASE("JsonText: one parse serves the envelope's scan and the document, padded or copied") {
    std::string text = R"({"cniVersion": "1.0.0", "a": {"b": [1, 2]}, "cniVersion": "x"})";
    text.reserve(text.size() + kJsonPadding);
    const JsonText parsed(text, /*padded=*/true);
    bool is_object = false;
    std::vector<std::string> keys;
    CHECK(scan_json(parsed, is_object, [&](const TopMember& m) { keys.push_back(m.key); }).empty());
    CHECK(is_object);
    CHECK(keys == std::vector<std::string>{"cniVersion", "a", "cniVersion"});
    // The repeated key the scan lets through is refused by the document reader.
    DecodedAllow decoded;
    CHECK_THROWS_WITH_AS((void)read_stdin_json(parsed, decoded),
                         "key \"cniVersion\" appears twice in one JSON object; remove one", ef::cni::Error);
    // Without the padding promise the parser works on a copy.
    const std::string exact = R"({"a": [1]})";
    const JsonText unpadded(exact);
    DecodedAllow none;
    CHECK(read_stdin_json(unpadded, none)["a"][0] == 1);
}

TEST_CASE("read_json: the nesting limit is enforced while descending, at the bracket that passes it") {
    CHECK(refusal(std::string(64, '[') + std::string(64, ']')).empty());
    CHECK(refusal("{\"a\":" + std::string(64, '[') + std::string(64, ']') + "}") ==
          "JSON nesting is deeper than 64 levels (at byte 69)");
    // Past the limit nothing after the bracket is read: a syntax error there is not reported.
    CHECK(refusal(std::string(65, '[') + "x") == "JSON nesting is deeper than 64 levels (at byte 65)");
}

TEST_CASE("scan_json: no nesting limit and no recursion, repeated keys allowed, the same errors as read_json") {
    bool is_object = false;
    std::vector<std::string> keys;
    const std::string deep = "{\"a\": " + std::string(300000, '[') + std::string(300000, ']') + R"(, "a": "x"})";
    CHECK(scan_json(deep, is_object, [&](const TopMember& m) { keys.push_back(m.key); }).empty());
    CHECK(is_object);
    CHECK(keys == std::vector<std::string>{"a", "a"});
    CHECK(scan_json("[1,]", is_object, [](const TopMember&) {}) == refusal("[1,]"));
    CHECK_FALSE(is_object);
}

namespace {

// validate() of the document path and of the allow path for one stdin: the
// same problems (paths, messages, order) and, when valid, the same profiles.
// Returns how many entries the allow path decoded.
size_t check_same_validation(const std::string& text) {
    CAPTURE(text.substr(0, 400));
    const json dom = read_json(text);
    DecodedAllow decoded;
    const json fast = read_stdin_json(text, decoded);
    size_t n = 0;
    for (const auto& [name, entries] : decoded.by_profile) n += entries.size();
    std::vector<Problem> a, b;
    auto cfg_a = validate(dom, a);
    auto cfg_b = validate(fast, b, &decoded);
    REQUIRE(a.size() == b.size());
    for (size_t i = 0; i < a.size(); ++i) {
        CHECK(a[i].path == b[i].path);
        CHECK(a[i].message == b[i].message);
    }
    REQUIRE(cfg_a.has_value() == cfg_b.has_value());
    if (cfg_a) CHECK(cfg_a->profiles == cfg_b->profiles);
    return n;
}

std::string stdin_with(const json& allow_a, const json& allow_b) {
    json doc = json::parse(ef::fuzz::kFixedConfig);
    doc["profiles"]["proxy-only"]["allow"] = allow_a;
    doc["profiles"]["closed"]["allow"] = allow_b;
    return doc.dump();
}

}  // namespace

TEST_CASE("the allow path of plugin stdin validates exactly as the document path") {
    json exact = json::array(), mixed = json::array();
    for (int i = 0; i < 300; ++i) {
        const std::string v4 = "100.64." + std::to_string(i / 256) + "." + std::to_string(i % 256);
        exact.push_back({{"cidr", v4 + "/32"}, {"protocol", "tcp"}, {"ports", {443}}});
        switch (i % 4) {
            case 0: mixed.push_back({{"cidr", v4 + "/32"}, {"protocol", "tcp"}, {"ports", {443}}}); break;
            case 1:
                mixed.push_back({{"cidr", v4 + "/32"}, {"protocol", "udp"}, {"ports", {"8000-8100", 53, 52}}});
                break;
            case 2:
                mixed.push_back({{"cidr", "fd00:2000:" + std::to_string(i) + "::1/128"},
                                 {"protocol", "sctp"},
                                 {"ports", {443, "8000-8100"}}});
                break;
            default: mixed.push_back({{"protocol", "any"}, {"cidr", "fd00:3000:" + std::to_string(i) + "::/64"}});
        }
    }
    // Valid lists: every entry decoded on the allow path (and the 3 of the
    // fixed config's other profiles).
    CHECK(check_same_validation(stdin_with(exact, mixed)) == 603);

    // Entries the allow path leaves to the document path, valid or not.
    const json others = json::array({
        json::parse(R"({"cidr": "10.0.0.1/8", "protocol": "tcp", "ports": [443]})"),      // host bits
        json::parse(R"({"cidr": "10.0.0.0/8", "protocol": "tcp"})"),                      // ports missing
        json::parse(R"({"cidr": "10.0.0.0/8", "protocol": "any", "ports": [1]})"),        // ports with any
        json::parse(R"({"cidr": "10.0.0.0/8", "protocol": "tcp", "ports": []})"),         // empty
        json::parse(R"({"cidr": "10.0.0.0/8", "protocol": "tcp", "ports": [0]})"),        // out of range
        json::parse(R"({"cidr": "10.0.0.0/8", "protocol": "tcp", "ports": [65536]})"),    // out of range
        json::parse(R"({"cidr": "10.0.0.0/8", "protocol": "tcp", "ports": [443.0]})"),    // float
        json::parse(R"({"cidr": "10.0.0.0/8", "protocol": "tcp", "ports": ["90-80"]})"),  // backwards
        json::parse(R"({"cidr": "10.0.0.0/8", "protocol": "tcp", "ports": ["53"]})"),     // a lone string
        json::parse(R"({"cidr": "10.0.0.0/8", "protocol": "icmp", "ports": [1]})"),       // protocol
        json::parse(R"({"cidr": "10.0.0.0/8", "protocol": "TCP", "ports": [1]})"),
        json::parse(R"({"cidr": "kube-dns", "protocol": "any"})"),
        json::parse(R"({"cidr": "10.0.0.0/8", "protocol": "any", "port": [1]})"),  // unknown key
        json::parse(R"({"cidr": 10, "protocol": "any"})"),
        json::parse(R"({"cidr": "10.0.0.0/8", "protocol": "any", "comment": "x"})"),
        json::parse(R"({})"),
        json::parse("[]"),
        json::parse("null"),
        json::parse("\"10.0.0.0/8\""),
        json::parse(R"({"cidr": "caf\u00e9::/64", "protocol": "any"})"),                                 // non-ASCII
        json::parse(R"({"cidr": "::ffff:10.0.0.1", "protocol": "any"})"),                                // v4-mapped
        json::parse(R"({"cidr": "10.0.0.0/8", "protocol": "udp", "ports": [53, 53, "50-60", 65535]})"),  // valid
        json::parse(R"({"cidr": "10.0.0.0/33", "protocol": "any"})"),
    });
    json with_bad = mixed;
    for (size_t i = 0; i < others.size(); ++i) with_bad.insert(with_bad.begin() + static_cast<long>(i * 7), others[i]);
    // 300 + 1 valid entry of `others` in each list.
    CHECK(check_same_validation(stdin_with(with_bad, others)) == 305);
    CHECK(check_same_validation(stdin_with(others, exact)) == 304);
    CHECK(check_same_validation(stdin_with(json::array(), "not a list")) == 3);

    // Text the dump above never writes: escapes, odd whitespace, keys in another order, repeated keys.
    std::string text = stdin_with(exact, json::array());
    const std::string first = R"({"cidr":"100.64.0.0/32","ports":[443],"protocol":"tcp"})";
    REQUIRE(text.find(first) != std::string::npos);
    for (const char* variant : {R"( { "ports" : [ 443 ] , "protocol" : "tcp" , "cidr" : "100.64.0.0/32" } )",
                                R"({"cidr":"100.64.0.0\/32","ports":[443],"protocol":"tcp"})",
                                R"({"\u0063idr":"100.64.0.0/32","ports":[443],"protocol":"tcp"})",
                                R"({"cidr":"100.64.0.0/32","ports":[443, "443-443"],"protocol":"tcp"})",
                                R"({"cidr":"100.64.0.0/32","ports":[443],"protocol":"tcp","protocol":"udp"})",
                                R"({"cidr":"100.64.0.0/32","ports":[0443],"protocol":"tcp"})",
                                R"({"cidr":"100.64.0.0/32","ports":[443],"protocol":"tcp",})"}) {
        std::string t = text;
        t.replace(t.find(first), first.size(), variant);
        CAPTURE(variant);
        std::string dom_error, fast_error;
        try {
            (void)read_json(t);
        } catch (const ef::cni::Error& e) {
            dom_error = e.msg;
        }
        DecodedAllow decoded;
        try {
            (void)read_stdin_json(t, decoded);
        } catch (const ef::cni::Error& e) {
            fast_error = e.msg;
        }
        CHECK(dom_error == fast_error);
        // Escaped text is left to the document path.
        if (dom_error.empty()) CHECK(check_same_validation(t) >= 302);
    }
}

TEST_CASE("parse_netconf decodes a profile's allow list once, whatever its length") {
    json allow = json::array();
    for (int i = 0; i < 100000; ++i)
        allow.push_back({{"cidr", "100." + std::to_string(64 + i / 65536) + "." + std::to_string(i / 256 % 256) + "." +
                                      std::to_string(i % 256) + "/32"},
                         {"protocol", "tcp"},
                         {"ports", {443}}});
    json doc = json::parse(ef::fuzz::kFixedConfig);
    doc["profiles"]["proxy-only"]["allow"] = allow;
    const std::string text = doc.dump();
    REQUIRE(text.size() > 5'000'000);
    REQUIRE(text.size() <= kMaxInputBytes);
    const NetConf conf = parse_netconf(text);
    const auto& got = conf.plugin.profiles.at("proxy-only").allow;
    REQUIRE(got.size() == 100000);
    CHECK(got[99999].cidr.addr[1] == 65);
    CHECK(got[99999].ports == std::vector<PortRange>{{443, 443}});
}
