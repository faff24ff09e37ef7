// Every input a fuzzer ever crashed on (tests/fuzz/regressions/<target>/) and
// every seed (tests/fuzz/corpus/<target>/), fed to the same entry function the
// fuzzer uses: a fixed bug stays fixed in the plain and the sanitized build,
// without clang or libFuzzer.
#include <doctest/doctest.h>

#include <climits>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "../fuzz/targets.h"

namespace {

namespace fs = std::filesystem;

std::vector<uint8_t> bytes_of(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The files of `dir`, sorted; none when it does not exist.
std::vector<fs::path> files_in(const fs::path& dir) {
    std::vector<fs::path> out;
    if (fs::is_directory(dir))
        for (const auto& e : fs::directory_iterator(dir))
            if (e.is_regular_file()) out.push_back(e.path());
    std::sort(out.begin(), out.end());
    return out;
}

// Runs `target` on every file under tests/fuzz/<kind>/<target>; returns how many.
size_t replay(const char* kind) {
    size_t n = 0;
    for (const auto& target : ef::fuzz::kTargets) {
        for (const auto& file : files_in(fs::path(EF_SOURCE_DIR) / "tests/fuzz" / kind / target.name)) {
            auto data = bytes_of(file);
            const std::string name = file.string();
            CAPTURE(name);
            CHECK_NOTHROW(target.run(data.data(), data.size()));
            ++n;
        }
    }
    return n;
}

}  // namespace

TEST_CASE("every kept fuzzer crash input is handled") { CHECK(replay("regressions") > 0); }

TEST_CASE("every fuzz seed is handled") {
    // The seeds are checked in; none at all means the path is wrong.
    CHECK(replay("corpus") > 0);
}

TEST_CASE("fuzz findings, stated plainly") {
    SUBCASE("a number beyond double's range is a decode failure (code 6), not an internal error") {
        const std::string in = R"({"cniVersion":"1.0.0","name":"n","type":"egress-fence","selectors":[],)"
                               R"("profiles":{},"prevResult":{"x":1e400}})";
        try {
            ef::config::parse_netconf(in);
            FAIL("parse_netconf accepted 1e400");
        } catch (const ef::cni::Error& e) {
            CHECK(e.code == ef::cni::kDecodeFailure);
            CHECK(e.msg.find("number overflow") != std::string::npos);
        }
    }
    SUBCASE("a chain read back with priority INT32_MIN prints as nft does") {
        ef::fence::Ruleset rs;
        rs.chains.push_back(
            {"output", ef::fence::BaseHook{ef::fence::Hook::output, INT32_MIN, ef::fence::Policy::drop, ""}, {}});
        CHECK(ef::fence::to_nft_text(rs).find("priority filter - 2147483648;") != std::string::npos);
    }
}
