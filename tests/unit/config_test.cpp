// Config decoding and validation: the corpus under tests/corpus/netconf (also
// pushed through the real plugin by bats) plus the cases that need code.
#include "config/config.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cni/error.h"
#include "config/values.h"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace ef::config;

namespace {

const fs::path kCorpus = fs::path(EF_SOURCE_DIR) / "tests/corpus/netconf";

std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

std::vector<fs::path> files_in(const fs::path& dir, std::string_view suffix) {
    std::vector<fs::path> out;
    for (const auto& e : fs::directory_iterator(dir)) {
        const std::string name = e.path().filename().string();
        if (name.size() > suffix.size() && name.ends_with(suffix) && !name.ends_with(".expect.json"))
            out.push_back(e.path());
    }
    std::sort(out.begin(), out.end());
    return out;
}

// The cni::Error parse_netconf throws; a default-constructed one (code 0) if none.
ef::cni::Error error_from(std::string_view stdin_bytes) {
    try {
        parse_netconf(stdin_bytes);
    } catch (const ef::cni::Error& e) {
        return e;
    }
    return {0, "parse_netconf accepted it"};
}

void check_rejected(const fs::path& file, std::string_view stdin_bytes, const json& expect) {
    INFO("corpus file: ", file.filename().string());
    const auto e = error_from(stdin_bytes);
    INFO("msg: ", e.msg);
    CHECK(e.code == expect.at("code").get<int>());
    const std::string path = expect.at("path").get<std::string>();
    // The first problem's path, followed by its message.
    if (!path.empty()) CHECK(e.msg.find(path + ": ") != std::string::npos);
    if (e.code == ef::cni::kInvalidConfig) CHECK(e.msg.starts_with("invalid config: " + path + ": "));
}

std::string design_example() { return read_file(kCorpus / "good/01-design-example.json"); }

std::vector<Problem> problems_of(const json& entry) {
    std::vector<Problem> problems;
    CHECK_FALSE(validate(entry, problems).has_value());
    return problems;
}

bool has_problem(const std::vector<Problem>& problems, std::string_view path, std::string_view words) {
    return std::any_of(problems.begin(), problems.end(),
                       [&](const Problem& p) { return p.path == path && p.message.find(words) != std::string::npos; });
}

}  // namespace

TEST_CASE("every malformed config in the corpus is refused with its code and JSON path") {
    const auto cases = files_in(kCorpus / "bad", ".json");
    const auto raw = files_in(kCorpus / "bad", ".stdin");
    CHECK(cases.size() + raw.size() >= 40);
    for (const auto& file : cases) {
        const json c = json::parse(read_file(file));
        check_rejected(file, c.at("stdin").dump(), c.at("expect"));
    }
    for (const auto& file : raw) {
        fs::path expect = file;
        expect.replace_extension(".expect.json");
        REQUIRE(fs::exists(expect));
        check_rejected(file, read_file(file), json::parse(read_file(expect)));
    }
}

TEST_CASE("every good config in the corpus parses") {
    const auto files = files_in(kCorpus / "good", ".json");
    CHECK(files.size() >= 4);
    for (const auto& file : files) {
        INFO("corpus file: ", file.filename().string());
        const auto e = error_from(read_file(file));
        INFO("msg: ", e.msg, "\ndetails: ", e.details);
        CHECK(e.code == 0);
    }
}

TEST_CASE("the DESIGN.md example decodes to the values it spells out") {
    const NetConf conf = parse_netconf(design_example());
    CHECK(conf.cni_version == "1.0.0");
    CHECK(conf.type == "egress-fence");
    CHECK(conf.prev_result.has_value());
    CHECK(conf.pod_annotations == std::map<std::string, std::string>{{"openshell.ai/cni", "enabled"}});
    const PluginConfig& cfg = conf.plugin;
    CHECK(cfg.log_file == "/var/log/egress-fence/egress-fence.log");
    CHECK(cfg.profile_annotation == "egress-fence.io/profile");
    REQUIRE(cfg.selectors.size() == 2);
    CHECK(cfg.selectors[0].namespaces == std::vector<std::string>{"sandboxes", "agents-*"});
    CHECK(cfg.selectors[0].allowed_profiles == std::vector<std::string>{"proxy-only", "proxy-and-dns"});
    CHECK(cfg.selectors[1].exempt_uid_annotation == "openshell.ai/proxy-uid");
    CHECK_FALSE(cfg.selectors[1].exempt_uid_range.has_value());

    const Profile& p = cfg.profiles.at("proxy-only");
    CHECK(p.name == "proxy-only");
    CHECK(p.exempt_uids == std::vector<uint32_t>{1337});
    CHECK(p.tcp_deny == TcpDeny::reset);
    CHECK(p.mode == Mode::enforce);
    CHECK(p.log == LogSpec{5, "second", 10, "egress-fence"});
    REQUIRE(p.allow.size() == 2);
    CHECK(p.allow[0].protocol == Protocol::udp);
    CHECK(format_cidr(p.allow[0].cidr) == "10.96.0.10/32");
    CHECK(p.allow[0].ports == std::vector<PortRange>{{53, 53}});
    CHECK(p.allow[1].cidr.v6);
    CHECK(format_cidr(p.allow[1].cidr) == "fd00:10:96::a/128");
    CHECK(p.allow[1].ports == std::vector<PortRange>{{53, 53}, {8000, 8100}});
}

TEST_CASE("validation normalises UIDs and ports and fills defaults") {
    const NetConf conf = parse_netconf(read_file(kCorpus / "good/03-every-key.json"));
    const Profile& p = conf.plugin.profiles.at("everything-audited");
    CHECK(p.exempt_uids == std::vector<uint32_t>{1, 65534, 4294967295u});
    CHECK(p.tcp_deny == TcpDeny::drop);
    CHECK(p.mode == Mode::audit);
    CHECK(p.log == LogSpec{100, "minute", 10000, "ef: deny_1.2 -x"});
    REQUIRE(p.allow.size() == 4);
    CHECK(p.allow[0].protocol == Protocol::any);
    CHECK(p.allow[0].ports.empty());
    CHECK(p.allow[1].ports == std::vector<PortRange>{{1, 2000}, {9899, 9899}, {65535, 65535}});
    CHECK(format_cidr(p.allow[2].cidr) == "64:ff9b::a00:1/128");  // embedded IPv4 parsed
    CHECK(format_cidr(p.allow[3].cidr) == "192.168.1.7/32");      // bare address: one host
    CHECK(conf.plugin.selectors[0].exempt_uid_range == UidRange{1000, 4294967295u});
    CHECK(conf.plugin.log_level == "debug");

    const Profile& bare = conf.plugin.profiles.at("deny-all");
    CHECK(bare.exempt_uids.empty());
    CHECK(bare.allow.empty());
    CHECK(bare.tcp_deny == TcpDeny::reset);
    CHECK_FALSE(bare.log.has_value());
    CHECK(conf.plugin.profiles.at("0").log == LogSpec{});  // "log": {} takes every default
}

TEST_CASE("defaults of the entry") {
    const NetConf conf = parse_netconf(read_file(kCorpus / "good/02-minimal-fences-nothing.json"));
    CHECK(conf.plugin.log_file.empty());
    CHECK(conf.plugin.log_level == "info");
    CHECK(conf.plugin.profile_annotation == "egress-fence.io/profile");
    CHECK_FALSE(conf.prev_result.has_value());
    CHECK(conf.pod_annotations.empty());
}

TEST_CASE("a runtime's null pod-annotations means a pod without annotations") {
    const NetConf conf = parse_netconf(read_file(kCorpus / "good/04-pod-annotations-null.json"));
    CHECK(conf.pod_annotations.empty());
}

TEST_CASE("annotations delivered: the key present (null, {} or with values) vs absent") {
    // The entry declares the capability; only runtimeConfig varies.
    json base = json::parse(read_file(kCorpus / "good/04-pod-annotations-null.json"));
    auto delivered = [&](const std::optional<json>& runtime_config) {
        json doc = base;
        doc.erase("runtimeConfig");
        if (runtime_config) doc["runtimeConfig"] = *runtime_config;
        return parse_netconf(doc.dump()).annotations_delivered;
    };
    CHECK(delivered(json{{"io.kubernetes.cri.pod-annotations", nullptr}}));
    CHECK(delivered(json{{"io.kubernetes.cri.pod-annotations", json::object()}}));
    CHECK(delivered(json{{"io.kubernetes.cri.pod-annotations", {{"a", "b"}}}}));
    // What libcni sends when the runtime did not supply the capability: no
    // runtimeConfig at all, or one holding only other capabilities.
    CHECK_FALSE(delivered(std::nullopt));
    CHECK_FALSE(delivered(json{{"portMappings", json::array()}}));
    CHECK_FALSE(delivered(json(nullptr)));
    CHECK_FALSE(delivered(json::object()));
}

TEST_CASE("every problem is reported, the first in msg and all in details") {
    json entry = json::parse(design_example());
    entry["logLevel"] = "loud";
    entry["profiles"]["proxy-only"]["allow"][1]["cidr"] = "10.0.0.1/8";
    entry["profiles"]["proxy-only"]["exemptUids"] = {1337, -1};
    const auto e = error_from(entry.dump());
    CHECK(e.code == ef::cni::kInvalidConfig);
    CHECK(e.msg == "invalid config: logLevel: expected one of debug, info, warn, error, found string \"loud\"");
    CHECK(std::count(e.details.begin(), e.details.end(), '\n') == 2);
    CHECK(e.details.find("profiles.proxy-only.allow[1].cidr: host bits are set; did you mean 10.0.0.0/8?") !=
          std::string::npos);
    CHECK(e.details.find(
              "profiles.proxy-only.exemptUids[1]: expected an integer from 0 to 4294967295, found number -1") !=
          std::string::npos);
}

TEST_CASE("messages say what was expected and what was found") {
    json entry = json::parse(design_example());
    entry["profiles"]["proxy-only"]["allow"][0]["port"] = entry["profiles"]["proxy-only"]["allow"][0]["ports"];
    entry["profiles"]["proxy-only"]["allow"][0].erase("ports");
    entry["profiles"]["proxy-only"]["tcpDeny"] = 1;
    entry["selectors"][0]["allowed_profiles"] = json::array();
    entry["selectors"][1]["profile"] = "proxy-onyl";
    entry["profiles"]["proxy-only"]["allow"][1]["ports"] = {"53"};
    const auto problems = problems_of(entry);
    CHECK(has_problem(problems, "profiles.proxy-only.allow[0].port", "unknown key (did you mean \"ports\"?)"));
    CHECK(has_problem(problems, "profiles.proxy-only.allow[0].ports", "required key missing for protocol \"udp\""));
    CHECK(has_problem(problems, "profiles.proxy-only.tcpDeny", "expected string, found number 1"));
    CHECK(has_problem(problems, "selectors[0].allowed_profiles", "did you mean \"allowedProfiles\"?"));
    CHECK(has_problem(problems, "selectors[1].profile",
                      "unknown profile \"proxy-onyl\" (did you mean \"proxy-only\"?); profiles: proxy-and-dns, "
                      "proxy-only"));
    CHECK(has_problem(problems, "profiles.proxy-only.allow[1].ports[0]", "write a single port as a number: 53"));
    CHECK(problems.size() == 6);
}

TEST_CASE("an unknown key far from every known key gets no suggestion") {
    json entry = json::parse(design_example());
    entry["zzzzzz"] = 1;
    const auto problems = problems_of(entry);
    REQUIRE(problems.size() == 1);
    CHECK(problems[0].path == "zzzzzz");
    CHECK(problems[0].message == "unknown key");
}

TEST_CASE("a selector without criteria is refused with the way to say 'every pod'") {
    json entry = json::parse(design_example());
    entry["selectors"][0] = {{"profile", "proxy-only"}};
    auto problems = problems_of(entry);
    CHECK(has_problem(problems, "selectors[0]", "\"namespaces\": [\"*\"]"));

    entry["selectors"][0]["namespaces"] = {"*"};
    problems.clear();
    CHECK(validate(entry, problems).has_value());
}

TEST_CASE("annotation selectors need the pod-annotations capability") {
    json entry = json::parse(design_example());
    entry["capabilities"]["io.kubernetes.cri.pod-annotations"] = false;
    const auto problems = problems_of(entry);
    CHECK(has_problem(problems, "selectors[1].annotations", "capabilities"));
    CHECK(has_problem(problems, "selectors[1].exemptUidAnnotation", "capabilities"));
    CHECK(problems.size() == 2);
}

TEST_CASE("unknown capabilities are accepted, as runtimes ignore them") {
    json entry = json::parse(design_example());
    entry["capabilities"]["portMappings"] = true;
    std::vector<Problem> problems;
    CHECK(validate(entry, problems).has_value());
    CHECK(problems.empty());
}

TEST_CASE("the CNI envelope keys are accepted by validate") {
    json entry = json::parse(design_example());
    entry["args"] = {{"cni", json::object()}};
    entry["ipam"] = json::object();
    entry["dns"] = json::object();
    std::vector<Problem> problems;
    CHECK(validate(entry, problems).has_value());
    CHECK(problems.empty());
}

TEST_CASE("parse_netconf: input size limit") {
    // Generated here rather than committed: one byte more than 16 MiB of '['.
    const std::string huge(kMaxInputBytes + 1, '[');
    auto e = error_from(huge);
    CHECK(e.code == ef::cni::kDecodeFailure);
    // The plugin stops reading past the limit, so the message cannot claim a size.
    CHECK(e.msg == "input is larger than the limit of 16777216 bytes (16 MiB)");
    CHECK_THROWS_WITH_AS(parse_json(huge), "input is larger than the limit of 16777216 bytes (16 MiB)", ef::cni::Error);

    // Exactly at the limit the size is fine; the nesting is what fails.
    e = error_from(std::string(kMaxInputBytes, '['));
    CHECK(e.code == ef::cni::kDecodeFailure);
    CHECK(e.msg == "JSON nesting is deeper than 64 levels (at byte 65)");
}

TEST_CASE("parse_json: nesting limit counts brackets outside strings only") {
    CHECK(kMaxJsonDepth == 64);
    const std::string deep64 = std::string(64, '[') + std::string(64, ']');
    CHECK(parse_json(deep64).is_array());
    CHECK_THROWS_WITH_AS(parse_json("[" + deep64 + "]"), "JSON nesting is deeper than 64 levels (at byte 65)",
                         ef::cni::Error);
    // A string full of brackets is not nesting, and an escaped quote does not end it.
    const std::string brackets = R"("\")" + std::string(200, '{') + "\"";
    CHECK(parse_json("[" + brackets + "]")[0].get<std::string>().size() == 201);
    // Mixed objects and arrays count alike.
    std::string mixed;
    for (int i = 0; i < 40; ++i) mixed += "{\"a\":[";
    for (int i = 0; i < 40; ++i) mixed += "]}";
    CHECK_THROWS_WITH_AS(parse_json(mixed), "JSON nesting is deeper than 64 levels (at byte 193)", ef::cni::Error);
}

TEST_CASE("parse_json: decode failures name the byte") {
    auto e = error_from(R"({"cniVersion": "1.0.0",})");
    CHECK(e.code == ef::cni::kDecodeFailure);
    CHECK(e.msg ==
          "input is not valid JSON (byte 24): syntax error while parsing object key - unexpected '}'; expected string "
          "literal");
}

TEST_CASE("parse_json: a repeated key is refused rather than resolved by parser order") {
    CHECK_THROWS_WITH_AS(parse_json(R"({"a": {"profile": "x", "profile": "y"}})"),
                         "key \"profile\" appears twice in one JSON object; remove one", ef::cni::Error);
    // The same key in sibling objects is fine.
    CHECK(parse_json(R"([{"profile": "x"}, {"profile": "y", "b": {"profile": 1}}])").size() == 2);
}

TEST_CASE("parse_netconf: a large but legal profile (10,000 allow entries) decodes") {
    json entry = json::parse(design_example());
    json allow = json::array();
    for (int i = 0; i < 10000; ++i)
        allow.push_back({{"cidr", "10." + std::to_string(i / 256) + "." + std::to_string(i % 256) + ".0/24"},
                         {"protocol", "tcp"},
                         {"ports", {443}}});
    entry["profiles"]["proxy-only"]["allow"] = allow;
    const std::string text = entry.dump();
    REQUIRE(text.size() <= kMaxInputBytes);
    CHECK(parse_netconf(text).plugin.profiles.at("proxy-only").allow.size() == 10000);
}

TEST_CASE("parse_cidr") {
    std::string why;
    auto c = parse_cidr("fd00:10:96::a", why);
    REQUIRE(c);
    CHECK(c->v6);
    CHECK(c->prefix == 128);
    CHECK(c->addr[0] == 0xfd);
    CHECK(c->addr[15] == 0x0a);
    c = parse_cidr("10.0.0.0/8", why);
    REQUIRE(c);
    CHECK_FALSE(c->v6);
    CHECK(c->addr[0] == 10);
    CHECK(c->prefix == 8);
    CHECK(parse_cidr("0.0.0.0/0", why));
    CHECK(parse_cidr("::/0", why));
    CHECK(parse_cidr("2001:db8::/32", why));

    CHECK_FALSE(parse_cidr("fd00::1/64", why));
    CHECK(why == "host bits are set; did you mean fd00::/64?");
    CHECK_FALSE(parse_cidr("10.1.2.3/12", why));
    CHECK(why == "host bits are set; did you mean 10.0.0.0/12?");
    CHECK_FALSE(parse_cidr("10.0.0.1/33", why));
    CHECK(why == "prefix length 33 is out of range for IPv4 (0-32)");
    CHECK_FALSE(parse_cidr("fe80::/129", why));
    CHECK(why == "prefix length 129 is out of range for IPv6 (0-128)");
    for (const char* bad : {"300.1.1.1/32", "10.0.0/8", "010.0.0.1", "10.0.0.0/", "10.0.0.0/+8", "10.0.0.0/ 8",
                            " 10.0.0.0/8", "10.0.0.0/8 ", "fe80::1%eth0", "1:2:3:4:5:6:7:8:9", "::ffff:1.2.3.4"}) {
        INFO(bad);
        CHECK_FALSE(parse_cidr(bad, why));
        CHECK_FALSE(why.empty());
    }
}

TEST_CASE("parse_port_range and merge_ports") {
    std::string why;
    CHECK(parse_port_range("8000-8100", why) == PortRange{8000, 8100});
    CHECK(parse_port_range("1-65535", why) == PortRange{1, 65535});
    CHECK_FALSE(parse_port_range("9-3", why));
    CHECK(why.find("did you mean \"3-9\"") != std::string::npos);
    for (const char* bad : {"0-5", "5-65536", "a-b", "-1", "1-", "1-2-3", " 1-2", "+1-2", "01-2"}) {
        INFO(bad);
        CHECK_FALSE(parse_port_range(bad, why));
    }
    CHECK(merge_ports({{80, 80}, {53, 53}, {54, 60}, {79, 81}, {65535, 65535}, {1, 1}}) ==
          std::vector<PortRange>{{1, 1}, {53, 60}, {79, 81}, {65535, 65535}});
    CHECK(merge_ports({{1, 65535}, {65535, 65535}}) == std::vector<PortRange>{{1, 65535}});
}

TEST_CASE("annotation keys follow Kubernetes' rules") {
    for (const char* good :
         {"egress-fence.io/profile", "openshell.ai/proxy-uid", "plain", "Example.COM/Key_1.x", "a/b"}) {
        INFO(good);
        CHECK_FALSE(annotation_key_problem(good).has_value());
    }
    for (const char* bad : {"", "/x", "x/", "-x", "x-", "a b", "example..com/x", "exa_mple.com/x", "a/b/c",
                            "this-name-part-is-way-too-long-for-kubernetes-which-allows-only-63"}) {
        INFO(bad);
        CHECK(annotation_key_problem(bad).has_value());
    }
}

TEST_CASE("profile names are DNS labels") {
    CHECK(is_profile_name("proxy-only"));
    CHECK(is_profile_name("0"));
    CHECK(is_profile_name(std::string(63, 'a')));
    CHECK_FALSE(is_profile_name(std::string(64, 'a')));
    CHECK_FALSE(is_profile_name(""));
    CHECK_FALSE(is_profile_name("-a"));
    CHECK_FALSE(is_profile_name("a-"));
    CHECK_FALSE(is_profile_name("Proxy"));
    CHECK_FALSE(is_profile_name("a_b"));
}

TEST_CASE("find_entry") {
    const json entry = json::parse(design_example());
    CHECK(find_entry(entry) == entry);

    json list = {{"cniVersion", "0.3.1"},
                 {"name", "k8s-pod-network"},
                 {"plugins",
                  {{{"type", "calico"}}, {{"type", "portmap"}}, {{"type", "egress-fence"}, {"logLevel", "debug"}}}}};
    const json found = find_entry(list);
    CHECK(found["logLevel"] == "debug");
    CHECK(found["cniVersion"] == "0.3.1");  // as libcni hands it to the plugin
    CHECK(found["name"] == "k8s-pod-network");

    CHECK_THROWS_WITH(find_entry(json::array()),
                      "expected a JSON object (an egress-fence entry or a conflist), found array");
    CHECK_THROWS_WITH(find_entry({{"type", "bridge"}}),
                      "neither an egress-fence entry (\"type\": \"egress-fence\") nor a conflist (\"plugins\": [...])");
    CHECK_THROWS_WITH(find_entry({{"plugins", {{"type", "egress-fence"}}}}), "plugins: expected array, found object");
    list["plugins"].erase(2);
    CHECK_THROWS_WITH(find_entry(list), "the conflist has no plugin with \"type\": \"egress-fence\"");
    list["plugins"][0]["type"] = "egress-fence";
    list["plugins"][1]["type"] = "egress-fence";
    CHECK_THROWS_WITH(find_entry(list),
                      "the conflist has 2 egress-fence entries (plugins[0], plugins[1]); keep exactly one");
    try {
        find_entry(json(5));
        FAIL("find_entry accepted a number");
    } catch (const ef::cni::Error& e) {
        CHECK(e.code == ef::cni::kInvalidConfig);
    }
}

TEST_CASE("validate accepts a document built in code (signed integers), not only parsed text") {
    json entry = json::parse(design_example());
    entry["profiles"]["proxy-only"]["exemptUids"] = json::array({json(int64_t{1337})});
    entry["profiles"]["proxy-only"]["allow"][0]["ports"] = json::array({json(int64_t{53})});
    entry["profiles"]["proxy-only"]["log"]["burst"] = int64_t{10};
    REQUIRE(entry["profiles"]["proxy-only"]["exemptUids"][0].is_number_unsigned() == false);
    std::vector<Problem> problems;
    const auto cfg = validate(entry, problems);
    const std::string first = problems.empty() ? "" : problems[0].path + ": " + problems[0].message;
    INFO(first);
    REQUIRE(cfg);
    CHECK(cfg->profiles.at("proxy-only").exempt_uids == std::vector<uint32_t>{1337});
    entry["profiles"]["proxy-only"]["exemptUids"] = json::array({json(int64_t{-5})});
    CHECK(has_problem(problems_of(entry), "profiles.proxy-only.exemptUids[0]", "found number -5"));
}

TEST_CASE("inboundPeers: prefixes validated, each problem at its path; absent means any peer") {
    json entry = json::parse(design_example());
    entry["profiles"]["proxy-only"]["inboundPeers"] = {"fd00::/8", "10.0.0.0/8", "10.0.0.0/8"};
    std::vector<Problem> none;
    auto cfg = validate(entry, none);
    REQUIRE(cfg);
    REQUIRE(cfg->profiles.at("proxy-only").inbound_peers);
    CHECK(cfg->profiles.at("proxy-only").inbound_peers->size() == 2);  // sorted, duplicates gone
    CHECK(!cfg->profiles.at("proxy-and-dns").inbound_peers);
    entry["profiles"]["proxy-only"]["inboundPeers"] = {"10.0.0.0/8", "10.0.0.1/8", "fd00::/8", 7};
    const auto problems = problems_of(entry);
    CHECK(has_problem(problems, "profiles.proxy-only.inboundPeers[1]", "host bits are set; did you mean 10.0.0.0/8?"));
    CHECK(has_problem(problems, "profiles.proxy-only.inboundPeers[3]", "expected string, found number 7"));
    CHECK(problems.size() == 2);
    entry["profiles"]["proxy-only"]["inboundPeers"] = "10.0.0.0/8";
    CHECK(has_problem(problems_of(entry), "profiles.proxy-only.inboundPeers", "expected array"));
}
