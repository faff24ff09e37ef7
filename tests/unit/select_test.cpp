// Pod selection: which profile a pod gets, and how its annotations may narrow
// (never widen) that choice.
#include <doctest/doctest.h>

#include "cni/error.h"
#include "config/config.h"

using namespace ef::config;

namespace {

Profile profile(std::string name, std::vector<uint32_t> uids = {}) {
    Profile p;
    p.name = std::move(name);
    p.exempt_uids = std::move(uids);
    return p;
}

// Three selectors tried in order: sandboxes by namespace (may pick another
// profile), OpenShell pods by annotation (proxy UID from an annotation,
// bounded), then a catch-all for agents-*.
PluginConfig config() {
    PluginConfig cfg;
    cfg.profiles = {{"proxy-only", profile("proxy-only", {1337})},
                    {"proxy-and-dns", profile("proxy-and-dns", {1337})},
                    {"closed", profile("closed")}};
    Selector sandboxes;
    sandboxes.namespaces = {"sandboxes", "team-?-sbx", "*-agents"};
    sandboxes.profile = "proxy-only";
    sandboxes.allowed_profiles = {"proxy-and-dns"};
    Selector openshell;
    openshell.annotations = {{"openshell.ai/cni", "enabled"}};
    openshell.profile = "closed";
    openshell.exempt_uid_annotation = "openshell.ai/proxy-uid";
    openshell.exempt_uid_range = UidRange{1000, 2000};
    Selector agents;
    agents.namespaces = {"agents-*"};
    agents.profile = "closed";
    cfg.selectors = {sandboxes, openshell, agents};
    return cfg;
}

Pod pod(std::string ns, std::map<std::string, std::string> annotations = {}) {
    Pod p;
    p.namespace_ = std::move(ns);
    p.name = "pod-0";
    p.annotations = std::move(annotations);
    return p;
}

std::optional<std::string> profile_name(const PluginConfig& cfg, const Pod& p) {
    auto chosen = select_profile(cfg, p);
    if (!chosen) return std::nullopt;
    return chosen->name;
}

// The message of the kPodSelection error select_profile throws; "" if none.
std::string refusal(const PluginConfig& cfg, const Pod& p) {
    try {
        select_profile(cfg, p);
    } catch (const ef::cni::Error& e) {
        CHECK(e.code == ef::cni::kPodSelection);
        return e.msg;
    }
    return "";
}

const std::map<std::string, std::string> kOpenShell = {{"openshell.ai/cni", "enabled"}};

std::map<std::string, std::string> openshell_with_uid(std::string uid) {
    auto a = kOpenShell;
    a["openshell.ai/proxy-uid"] = std::move(uid);
    return a;
}

}  // namespace

TEST_CASE("glob_match") {
    CHECK(glob_match("sandboxes", "sandboxes"));
    CHECK_FALSE(glob_match("sandboxes", "sandboxes2"));
    CHECK_FALSE(glob_match("sandboxes", "sandbox"));
    CHECK(glob_match("agents-*", "agents-"));
    CHECK(glob_match("agents-*", "agents-team-a"));
    CHECK_FALSE(glob_match("agents-*", "agent-x"));
    CHECK(glob_match("*-agents", "team-a-agents"));
    CHECK_FALSE(glob_match("*-agents", "team-a-agents-2"));
    CHECK(glob_match("team-?-sbx", "team-a-sbx"));
    CHECK_FALSE(glob_match("team-?-sbx", "team--sbx"));
    CHECK_FALSE(glob_match("team-?-sbx", "team-ab-sbx"));
    CHECK(glob_match("*", ""));
    CHECK(glob_match("*", "anything"));
    CHECK(glob_match("a*b*c", "a-b-b-c"));
    CHECK(glob_match("a*b*c", "abc"));
    CHECK_FALSE(glob_match("a*b*c", "acb"));
    CHECK(glob_match("**a**", "xxaxx"));
    CHECK_FALSE(glob_match("", "x"));
    CHECK(glob_match("", ""));
    CHECK_FALSE(glob_match("?", ""));
}

TEST_CASE("glob_match stays fast on patterns that make backtracking matchers explode") {
    // A recursive matcher takes exponential time here; this one is O(n * m).
    const std::string text(20000, 'a');
    const std::string pattern = "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b";
    CHECK_FALSE(glob_match(pattern, text));
    CHECK(glob_match(std::string(5000, '*') + "a", text));
}

TEST_CASE("namespace globs pick the selector") {
    const auto cfg = config();
    CHECK(profile_name(cfg, pod("sandboxes")) == "proxy-only");        // exact
    CHECK(profile_name(cfg, pod("team-x-sbx")) == "proxy-only");       // ?
    CHECK(profile_name(cfg, pod("research-agents")) == "proxy-only");  // *suffix
    CHECK(profile_name(cfg, pod("agents-7")) == "closed");             // prefix*
    CHECK(profile_name(cfg, pod("default")) == std::nullopt);          // no match: not fenced
    CHECK(profile_name(cfg, pod("sandboxes-2")) == std::nullopt);
    CHECK(profile_name(cfg, pod("")) == std::nullopt);
}

TEST_CASE("annotation selectors need every key with the exact value") {
    const auto cfg = config();
    CHECK(profile_name(cfg, pod("default", openshell_with_uid("1500"))) == "closed");
    CHECK(profile_name(cfg, pod("default", {{"openshell.ai/cni", "Enabled"}})) == std::nullopt);
    CHECK(profile_name(cfg, pod("default", {{"openshell.ai/cni", ""}})) == std::nullopt);
    CHECK(profile_name(cfg, pod("default", {{"other", "enabled"}})) == std::nullopt);

    auto two_keys = config();
    two_keys.selectors[1].annotations["tier"] = "sandbox";
    CHECK(profile_name(two_keys, pod("default", openshell_with_uid("1500"))) == std::nullopt);
    auto both = openshell_with_uid("1500");
    both["tier"] = "sandbox";
    CHECK(profile_name(two_keys, pod("default", both)) == "closed");
}

TEST_CASE("namespaces and annotations of one selector must both match") {
    auto cfg = config();
    cfg.selectors[1].namespaces = {"openshell"};
    CHECK(profile_name(cfg, pod("default", openshell_with_uid("1500"))) == std::nullopt);
    CHECK(profile_name(cfg, pod("openshell", openshell_with_uid("1500"))) == "closed");
    CHECK(profile_name(cfg, pod("openshell")) == std::nullopt);
}

TEST_CASE("the first matching selector wins") {
    const auto cfg = config();
    // Matches selectors[0] by namespace and selectors[1] by annotation.
    const auto chosen = select_profile(cfg, pod("sandboxes", kOpenShell));
    REQUIRE(chosen);
    CHECK(chosen->name == "proxy-only");
    CHECK(chosen->exempt_uids == std::vector<uint32_t>{1337});  // selectors[1]'s UID rule not applied
    CHECK_FALSE(chosen->annotated_uid.has_value());
    // Matches selectors[1] and selectors[2].
    CHECK(profile_name(cfg, pod("agents-1", openshell_with_uid("1500"))) == "closed");
    auto reordered = cfg;
    std::swap(reordered.selectors[0], reordered.selectors[2]);
    CHECK(profile_name(reordered, pod("agents-1")) == "closed");
}

TEST_CASE("the profile annotation picks among the selector's allowed profiles only") {
    const auto cfg = config();
    const std::string key = "egress-fence.io/profile";
    CHECK(profile_name(cfg, pod("sandboxes", {{key, "proxy-and-dns"}})) == "proxy-and-dns");
    CHECK(profile_name(cfg, pod("sandboxes", {{key, "proxy-only"}})) == "proxy-only");  // its own: implicit
    CHECK(refusal(cfg, pod("sandboxes", {{key, "closed"}})) ==
          "annotation egress-fence.io/profile=\"closed\" is not allowed for pods matched by selectors[0]; allowed: "
          "proxy-only, proxy-and-dns");
    CHECK(refusal(cfg, pod("sandboxes", {{key, ""}})).find("selectors[0]") != std::string::npos);
    CHECK(refusal(cfg, pod("agents-1", {{key, "proxy-only"}})) ==
          "annotation egress-fence.io/profile=\"proxy-only\" is not allowed for pods matched by selectors[2]; "
          "allowed: closed");
    // An unmatched pod is not fenced, and its annotation cannot change that.
    CHECK(profile_name(cfg, pod("default", {{key, "proxy-only"}})) == std::nullopt);

    auto custom = cfg;
    custom.profile_annotation = "example.com/egress";
    CHECK(profile_name(custom, pod("sandboxes", {{key, "closed"}})) == "proxy-only");  // not the configured key
    CHECK(profile_name(custom, pod("sandboxes", {{"example.com/egress", "proxy-and-dns"}})) == "proxy-and-dns");
}

TEST_CASE("the exempt UID annotation adds one UID within its bounds") {
    const auto cfg = config();
    auto chosen = select_profile(cfg, pod("default", openshell_with_uid("1500")));
    REQUIRE(chosen);
    CHECK(chosen->exempt_uids == std::vector<uint32_t>{1500});
    CHECK(chosen->annotated_uid == 1500u);
    CHECK(select_profile(cfg, pod("default", openshell_with_uid("1000")))->exempt_uids == std::vector<uint32_t>{1000});
    CHECK(select_profile(cfg, pod("default", openshell_with_uid("2000")))->exempt_uids == std::vector<uint32_t>{2000});
    // The configured profile itself is untouched.
    CHECK(cfg.profiles.at("closed").exempt_uids.empty());
}

TEST_CASE("the annotated UID joins the profile's own UIDs, sorted and unique") {
    auto cfg = config();
    cfg.selectors[1].profile = "proxy-only";
    cfg.selectors[1].exempt_uid_range.reset();
    CHECK(select_profile(cfg, pod("x", openshell_with_uid("99")))->exempt_uids == std::vector<uint32_t>{99, 1337});
    CHECK(select_profile(cfg, pod("x", openshell_with_uid("1337")))->exempt_uids == std::vector<uint32_t>{1337});
    CHECK(select_profile(cfg, pod("x", openshell_with_uid("4294967295")))->exempt_uids ==
          std::vector<uint32_t>{1337, 4294967295u});
}

TEST_CASE("a missing, malformed or out-of-bounds exempt UID fails closed") {
    const auto cfg = config();
    CHECK(refusal(cfg, pod("default", kOpenShell)) ==
          "annotation openshell.ai/proxy-uid is missing; selectors[1] requires it to name the proxy's UID");
    for (const char* bad : {"12a", "-1", " 5", "5 ", "+5", "4294967296", "", "0x10", "1.5", "01500", "1e3"}) {
        INFO("uid: \"", bad, "\"");
        const std::string msg = refusal(cfg, pod("default", openshell_with_uid(bad)));
        CHECK(msg == "annotation openshell.ai/proxy-uid=\"" + std::string(bad) +
                         "\" is not a UID (a plain decimal number up to 4294967295); selectors[1] requires it to "
                         "name the proxy's UID");
    }
    CHECK(refusal(cfg, pod("default", openshell_with_uid("999"))) ==
          "annotation openshell.ai/proxy-uid=\"999\" is outside selectors[1].exemptUidRange 1000-2000");
    CHECK(refusal(cfg, pod("default", openshell_with_uid("2001"))).find("outside") != std::string::npos);

    auto unbounded = cfg;
    unbounded.selectors[1].exempt_uid_range.reset();
    CHECK(refusal(unbounded, pod("default", openshell_with_uid("0"))).find("UID 0 (root) cannot be exempt") !=
          std::string::npos);
}

TEST_CASE("a selector naming a profile that does not exist is an error, not an unfenced pod") {
    auto cfg = config();
    cfg.selectors[0].profile = "gone";
    try {
        select_profile(cfg, pod("sandboxes"));
        FAIL("selected a profile that does not exist");
    } catch (const ef::cni::Error& e) {
        CHECK(e.code == ef::cni::kInvalidConfig);
        CHECK(e.msg == "selectors[0] names profile \"gone\", which does not exist");
    }
}

TEST_CASE("selection works on a validated config") {
    std::vector<Problem> problems;
    const auto cfg = validate(nlohmann::json::parse(R"({
        "type": "egress-fence",
        "capabilities": {"io.kubernetes.cri.pod-annotations": true},
        "selectors": [{"namespaces": ["*"], "annotations": {"fence": "yes"}, "profile": "p"}],
        "profiles": {"p": {"exemptUids": [7, 3]}}
    })"),
                              problems);
    REQUIRE(cfg);
    const auto chosen = select_profile(*cfg, pod("any-namespace", {{"fence", "yes"}}));
    REQUIRE(chosen);
    CHECK(chosen->name == "p");
    CHECK(chosen->exempt_uids == std::vector<uint32_t>{3, 7});
    CHECK_FALSE(select_profile(*cfg, pod("any-namespace")));
}

TEST_CASE("a runtime that delivers no annotations: an annotation selector that could match fails closed") {
    const PluginConfig cfg = config();  // sandboxes (namespace), openshell (annotation, any ns), agents-* (namespace)
    auto blind = [](std::string ns) {
        Pod p = pod(std::move(ns));
        p.annotations_delivered = false;
        return p;
    };
    // selectors[0] matches by namespace alone and comes first: annotations could not change that.
    CHECK(profile_name(cfg, blind("sandboxes")) == "proxy-only");
    // selectors[1] would be tried next for any other namespace: it might have picked the pod.
    const std::string msg = refusal(cfg, blind("agents-7"));
    CHECK(msg.find("the runtime delivers no pod annotations") != std::string::npos);
    CHECK(msg.find("selectors[1]") != std::string::npos);
    CHECK(msg.find("refusing to start it unfenced") != std::string::npos);
    CHECK(refusal(cfg, blind("default")).find("selectors[1]") != std::string::npos);
    // The same pods, annotations delivered but none set: selection as before.
    CHECK(profile_name(cfg, pod("agents-7")) == "closed");
    CHECK_FALSE(profile_name(cfg, pod("default")).has_value());

    // An annotation selector limited to namespaces the pod is not in cannot pick it.
    PluginConfig scoped = cfg;
    scoped.selectors[1].namespaces = {"openshell-*"};
    CHECK(profile_name(scoped, blind("agents-7")) == "closed");
    CHECK_FALSE(profile_name(scoped, blind("default")).has_value());
    CHECK(refusal(scoped, blind("openshell-a")).find("selectors[1]") != std::string::npos);

    // A namespace selector whose proxy UID comes from an annotation needs them too.
    PluginConfig uid_only;
    uid_only.profiles = cfg.profiles;
    Selector s;
    s.namespaces = {"sandboxes"};
    s.profile = "closed";
    s.exempt_uid_annotation = "openshell.ai/proxy-uid";
    uid_only.selectors = {s};
    CHECK(refusal(uid_only, blind("sandboxes")).find("selectors[0]") != std::string::npos);
    CHECK_FALSE(profile_name(uid_only, blind("default")).has_value());

    // No annotation selector at all: nothing depends on annotations.
    PluginConfig by_namespace = cfg;
    by_namespace.selectors.erase(by_namespace.selectors.begin() + 1);
    CHECK(profile_name(by_namespace, blind("agents-7")) == "closed");
    CHECK_FALSE(profile_name(by_namespace, blind("default")).has_value());
}

TEST_CASE("a contract version annotation above what the selector implements fails closed") {
    PluginConfig cfg = config();
    cfg.selectors[1].contract_version_annotation = "openshell.ai/cni-contract-version";
    cfg.selectors[1].max_contract_version = 1;
    Pod pod{"default", "sbx", "c", "u", {{"openshell.ai/cni", "enabled"}, {"openshell.ai/proxy-uid", "1500"}}};
    CHECK(select_profile(cfg, pod).has_value());  // no annotation: the implemented contract
    pod.annotations["openshell.ai/cni-contract-version"] = "1";
    CHECK(select_profile(cfg, pod).has_value());
    for (const char* bad : {"2", "0", "v1", "", "-1"}) {
        CAPTURE(bad);
        pod.annotations["openshell.ai/cni-contract-version"] = bad;
        try {
            select_profile(cfg, pod);
            FAIL("expected the pod to be refused");
        } catch (const ef::cni::Error& e) {
            CHECK(e.code == ef::cni::kPodSelection);
            CHECK(e.msg.find("openshell.ai/cni-contract-version") != std::string::npos);
        }
    }
}

TEST_CASE("contractVersion is validated") {
    std::vector<Problem> problems;
    auto entry = nlohmann::json::parse(
        R"({"type":"egress-fence","capabilities":{"io.kubernetes.cri.pod-annotations":true},
        "selectors":[{"annotations":{"a":"b"},"profile":"p","contractVersion":{"annotation":"x.io/v","max":0,"extra":1}}],
        "profiles":{"p":{}}})");
    CHECK_FALSE(validate(entry, problems).has_value());
    bool max = false, extra = false;
    for (const auto& p : problems) {
        max |= p.path == "selectors[0].contractVersion.max";
        extra |= p.path == "selectors[0].contractVersion.extra";
    }
    CHECK(max);
    CHECK(extra);
}
