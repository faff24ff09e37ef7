// The envelope every verb reads whatever the rest of stdin holds (DEL reads
// nothing else): cniVersion, logFile, logLevel.
#include <doctest/doctest.h>

#include <string>

#include "config/envelope.h"

using ef::config::Envelope;
using ef::config::read_envelope;

namespace {

bool mentions(const Envelope& e, const std::string& text) {
    for (const auto& p : e.problems)
        if (p.find(text) != std::string::npos) return true;
    return false;
}

}  // namespace

TEST_CASE("envelope: read from a config the validator would refuse (unknown keys, invalid values)") {
    Envelope e = read_envelope(R"({"cniVersion": "0.4.0", "name": 5, "type": "egress-fence",
        "logFile": "/var/log/ef/ef.log", "logLevel": "warn", "fromANewerChart": {"x": [1, 2]},
        "profiles": "not an object", "selectors": [{"namespaces": 7}]})");
    CHECK(e.cni_version == "0.4.0");
    CHECK(e.log_file == "/var/log/ef/ef.log");
    CHECK(e.log_level == "warn");
    CHECK(e.problems.empty());
}

TEST_CASE("envelope: only top-level keys count") {
    Envelope e = read_envelope(R"({"profiles": {"cniVersion": "0.3.1", "logFile": "/tmp/inner"},
        "cniVersion": "1.0.0"})");
    CHECK(e.cni_version == "1.0.0");
    CHECK(e.log_file.empty());
}

TEST_CASE("envelope: unsupported, missing or non-string cniVersion gives no version, and says why") {
    for (const char* doc : {R"({"cniVersion": "1.2.0"})", R"({"cniVersion": "0.2.0"})", R"({})",
                            R"({"cniVersion": 1.0})", R"({"cniVersion": ["1.0.0"]})"}) {
        CAPTURE(doc);
        Envelope e = read_envelope(doc);
        CHECK(e.cni_version.empty());
        CHECK(mentions(e, "cniVersion"));
    }
}

TEST_CASE("envelope: a relative, non-string or NUL-holding logFile and an unknown logLevel are not used") {
    Envelope e = read_envelope(R"({"cniVersion": "1.1.0", "logFile": "var/log/ef.log", "logLevel": "verbose"})");
    CHECK(e.cni_version == "1.1.0");
    CHECK(e.log_file.empty());
    CHECK(e.log_level == "info");
    CHECK(mentions(e, "logFile"));
    CHECK(mentions(e, "logLevel"));
    CHECK(read_envelope(R"({"logFile": {"path": "/x"}})").log_file.empty());
    CHECK(read_envelope("{\"logFile\": \"/var/log/a\\u0000b\"}").log_file.empty());
    CHECK(read_envelope(R"({"logFile": ""})").problems.size() == 1);  // only the missing cniVersion
}

TEST_CASE("envelope: a repeated key keeps its first value") {
    Envelope e = read_envelope(R"({"cniVersion": "0.3.1", "cniVersion": "1.0.0"})");
    CHECK(e.cni_version == "0.3.1");
}

TEST_CASE("envelope: input that does not decode as one object gives nothing, not half a document") {
    for (const char* doc : {"", "not json", R"({"cniVersion": "1.0.0", "logFile": "/var/log/ef.log",)",
                            R"({"cniVersion": "1.0.0"} trailing)", R"(["cniVersion", "1.0.0"])", R"("1.0.0")",
                            "{\"cniVersion\": \"1.0.0\", \"name\": \"\xff\"}"}) {
        CAPTURE(doc);
        Envelope e = read_envelope(doc);
        CHECK(e.cni_version.empty());
        CHECK(e.log_file.empty());
        CHECK(e.log_level == "info");
        CHECK(mentions(e, "does not decode"));
    }
}

TEST_CASE("envelope: deep nesting is walked without recursion") {
    std::string deep = R"({"cniVersion": "1.0.0", "x": )" + std::string(200000, '[') + std::string(200000, ']') + "}";
    CHECK(read_envelope(deep).cni_version == "1.0.0");
}
