// CNI protocol pieces: CNI_ARGS, result versions, error objects, VERSION.
#include <doctest/doctest.h>

#include "cni/protocol.h"
#include "cni/version.h"

using namespace ef::cni;
using nlohmann::json;

TEST_CASE("CNI_ARGS: the Kubernetes keys are read") {
    Args a = parse_args(
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=sandboxes;K8S_POD_NAME=agent-0;"
        "K8S_POD_INFRA_CONTAINER_ID=abc123;K8S_POD_UID=u-1;Other=x");
    CHECK(a.pod_namespace == "sandboxes");
    CHECK(a.pod_name == "agent-0");
    CHECK(a.infra_container_id == "abc123");
    CHECK(a.pod_uid == "u-1");
    CHECK(a.ignore_unknown);
    CHECK(a.all.at("Other") == "x");
}

TEST_CASE("CNI_ARGS: empty is fine, values may contain '='") {
    CHECK(parse_args("").all.empty());
    CHECK(parse_args("K8S_POD_NAME=a=b").pod_name == "a=b");
}

TEST_CASE("CNI_ARGS: unknown keys are refused unless IgnoreUnknown is set") {
    try {
        parse_args("K8S_POD_NAME=a;FOO=bar");
        FAIL("expected an error");
    } catch (const Error& e) {
        CHECK(e.code == kInvalidEnvironment);
        CHECK(e.msg.find("FOO") != std::string::npos);
    }
    CHECK_NOTHROW(parse_args("K8S_POD_NAME=a;FOO=bar;IgnoreUnknown=true"));
}

TEST_CASE("CNI_ARGS: a pair without '=' is an environment error") {
    CHECK_THROWS_AS(parse_args("K8S_POD_NAME"), Error);
    CHECK_THROWS_AS(parse_args("=x"), Error);
}

TEST_CASE("prevResult passes through unchanged in every supported version") {
    json v1 = json::parse(
        R"({"cniVersion":"1.0.0","interfaces":[{"name":"eth0","mac":"aa:bb:cc:dd:ee:ff","sandbox":"/var/run/netns/x"}],
        "ips":[{"address":"10.1.0.5/24","gateway":"10.1.0.1","interface":0},{"address":"fd00::5/64","interface":0}],
        "routes":[{"dst":"10.1.0.0/16"}],"dns":{"nameservers":["10.96.0.10"]}})");
    for (auto version : kSupportedVersions) {
        CAPTURE(version);
        json out = result_for_version(&v1, version);
        CHECK(out["cniVersion"] == std::string(version));
        CHECK(out["interfaces"] == v1["interfaces"]);
        CHECK(out["routes"] == v1["routes"]);
        CHECK(out["dns"] == v1["dns"]);
        REQUIRE(out["ips"].size() == 2);
        CHECK(out["ips"][0]["address"] == "10.1.0.5/24");
        CHECK(out["ips"][0]["gateway"] == "10.1.0.1");
        if (version[0] == '0') {
            CHECK(out["ips"][0]["version"] == "4");
            CHECK(out["ips"][1]["version"] == "6");
        } else {
            CHECK(!out["ips"][0].contains("version"));
        }
    }
}

TEST_CASE("a 0.3.1 prevResult keeps its fields when output as 0.3.1") {
    json v031 = json::parse(R"({"cniVersion":"0.3.1","ips":[{"version":"4","address":"10.1.0.5/24","interface":0}]})");
    CHECK(result_for_version(&v031, "0.3.1") == v031);
}

TEST_CASE("no prevResult: an empty result of the config's version") {
    CHECK(result_for_version(nullptr, "0.4.0") == json{{"cniVersion", "0.4.0"}});
}

TEST_CASE("error objects carry version, code, msg and details") {
    json j = json::parse(error_json(Error(kInvalidConfig, "bad", "more"), "0.3.1"));
    CHECK(j == json{{"cniVersion", "0.3.1"}, {"code", 7}, {"msg", "bad"}, {"details", "more"}});
    CHECK(!json::parse(error_json(Error(kTryAgain, "x"), "1.0.0")).contains("details"));
}

TEST_CASE("VERSION lists all five versions") {
    json j = json::parse(version_json("1.0.0"));
    CHECK(j["cniVersion"] == "1.0.0");
    CHECK(j["supportedVersions"] == json{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"});
}
