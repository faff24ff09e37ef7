// Root test for lib/nft: enters a netns, applies the built-in sample Ruleset,
// reads it back and prints OK or the first difference.
//
//   ef_nft_roundtrip <netns-path> [apply|read|compare|delete|foreign|big N|time N]
//     apply    (default) apply the sample, read back, compare
//     add      only apply_ruleset (what ADD does), for timing the process
//     read     read the table and compare it with the sample (e.g. after
//              `nft -f` of nft's own listing)
//     delete   delete the table (prints whether there was one)
//     foreign  list other base chains on output/forward
//     big N    apply the sample with N IPv4 (+N/4 IPv6) allow entries
//     time N   like big, and print the apply time in microseconds
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

#include "../unit/nft_sample.h"
#include "cni/error.h"
#include "netns/netns.h"
#include "nft/nft.h"

using namespace ef;

namespace {

int compare_with(const fence::Ruleset& want) {
    auto got = nft::read_ruleset();
    if (!got) {
        std::printf("DIFF: no table inet egress_fence\n");
        return 1;
    }
    fence::Ruleset expected = want;
    expected.meta = nft::fit_metadata(want.meta);
    if (*got == expected) {
        std::printf("OK\n");
        return 0;
    }
    // Metadata never survives `nft -f` of a listing: compare the body too.
    fence::Ruleset body = *got;
    body.meta = expected.meta;
    std::printf("DIFF: %s\n", body == expected ? "metadata only" : "body differs");
    return 1;
}

int run(int argc, char** argv) {
    netns::ScopedNetns in(argv[1]);
    std::string verb = argc > 2 ? argv[2] : "apply";
    size_t n = argc > 3 ? std::strtoul(argv[3], nullptr, 10) : 0;
    fence::Ruleset rs = (verb == "big" || verb == "time") ? nft_sample::big(n) : nft_sample::sample();
    if (verb == "apply" || verb == "big" || verb == "time") {
        auto t0 = std::chrono::steady_clock::now();
        nft::apply_ruleset(rs);
        auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0);
        if (verb == "time") std::printf("apply_ruleset: %lld us\n", static_cast<long long>(us.count()));
        return compare_with(rs);
    }
    if (verb == "add") {
        nft::apply_ruleset(rs);
        return 0;
    }
    if (verb == "read") return compare_with(rs);
    if (verb == "delete") {
        std::printf("%s\n", nft::delete_table() ? "deleted" : "no table");
        return 0;
    }
    if (verb == "foreign") {
        for (const auto& c : nft::foreign_base_chains())
            std::printf("%s %s %s hook %s priority %d policy %s\n", c.family.c_str(), c.table.c_str(), c.chain.c_str(),
                        c.hook.c_str(), c.priority, c.policy.c_str());
        std::string reason;
        std::printf("available: %s %s\n", nft::available(reason) ? "yes" : "no", reason.c_str());
        return 0;
    }
    std::fprintf(stderr, "unknown verb %s\n", verb.c_str());
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s <netns-path> [apply|add|read|delete|foreign|big N|time N]\n", argv[0]);
        return 2;
    }
    try {
        return run(argc, argv);
    } catch (const cni::Error& e) {
        std::printf("ERROR %d: %s (%s)\n", e.code, e.msg.c_str(), e.details.c_str());
        return 1;
    } catch (const std::exception& e) {
        std::printf("ERROR: %s\n", e.what());
        return 1;
    } catch (...) {
        std::printf("ERROR: unknown exception\n");
        return 1;
    }
}
