// Every input a fuzzer ever crashed on (tests/fuzz/regressions/<target>/) and
// every seed (tests/fuzz/corpus/<target>/), fed to the same entry function the
// fuzzer uses: a fixed bug stays fixed in the plain and the sanitized build,
// without clang or libFuzzer.
#include <doctest/doctest.h>

#include <climits>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "../fuzz/targets.h"

namespace {

namespace fs = std::filesystem;

std::vector<uint8_t> bytes_of(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The entries of `dir`, sorted; none when it does not exist.
std::vector<fs::path> entries_of(const fs::path& dir) {
    std::vector<fs::path> out;
    if (fs::is_directory(dir))
        for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path());
    std::sort(out.begin(), out.end());
    return out;
}

const ef::fuzz::Target* target_named(const std::string& name) {
    for (const auto& target : ef::fuzz::kTargets)
        if (name == target.name) return &target;
    return nullptr;
}

// Replays tests/fuzz/<kind>/<target>/* through each target's entry. Every
// directory there must be named after a target and every entry in it must be
// a file, and each such directory must replay at least one input: a misnamed
// or emptied directory would otherwise replay nothing, unnoticed. Returns the
// count per target (0 for a target without a directory).
std::map<std::string, size_t> replay(const char* kind) {
    const fs::path root = fs::path(EF_SOURCE_DIR) / "tests/fuzz" / kind;
    std::map<std::string, size_t> counts;
    for (const auto& target : ef::fuzz::kTargets) counts[target.name] = 0;
    const auto dirs = entries_of(root);
    REQUIRE_MESSAGE(!dirs.empty(), "no directory under " << root.string());
    for (const auto& dir : dirs) {
        const std::string dir_name = dir.filename().string();
        CAPTURE(dir_name);
        const auto* target = target_named(dir_name);
        CHECK_MESSAGE(target != nullptr, root.string() << "/" << dir_name << " is named after no fuzz target");
        CHECK_MESSAGE(fs::is_directory(dir), dir.string() << " is not a directory");
        if (target == nullptr || !fs::is_directory(dir)) continue;
        for (const auto& file : entries_of(dir)) {
            const std::string name = file.string();
            CAPTURE(name);
            CHECK_MESSAGE(fs::is_regular_file(file), name << " is not a file: nothing replays it");
            if (!fs::is_regular_file(file)) continue;
            auto data = bytes_of(file);
            CHECK_NOTHROW(target->run(data.data(), data.size()));
            ++counts[dir_name];
        }
        CHECK_MESSAGE(counts[dir_name] > 0, dir.string() << " replays no input");
    }
    return counts;
}

}  // namespace

TEST_CASE("every kept fuzzer crash input is handled") {
    // Not every target has crashed; those that did keep their inputs.
    size_t total = 0;
    for (const auto& [name, n] : replay("regressions")) total += n;
    CHECK(total > 0);
}

TEST_CASE("every fuzz seed is handled") {
    // The seeds are checked in: every target has some.
    for (const auto& count : replay("corpus")) {
        const std::string& name = count.first;
        CHECK_MESSAGE(count.second > 0, "fuzz target " << name << " has no seed in tests/fuzz/corpus/" << name);
    }
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
