// ef_bench_batch: writes, once, the nf_tables batch egress-fence's ADD would
// send for a pod, so ef_bench_floor can replay it without doing any of the
// plugin's work at run time. Same library path as the plugin (validate,
// select_profile, compile, encode), but the config is read from a file
// without the plugin's 16 MiB stdin limit, so rulesets the plugin cannot be
// handed can still be installed for the datapath runs.
//
//   ef_bench_batch CONFIG OUT [--namespace NS] [--name NAME] [--container-id ID]
//                  [--create-only | --delete] [--backend hash|rhash|pipapo]
//     CONFIG         the plugin's stdin (or a conflist / the bare entry)
//     --create-only  the batch the plugin sends to a netns without a fence
//                    (the tables created exclusively, nothing freed); without
//                    it, the replace batch of a re-ADD (NEWTABLE, DELTABLE,
//                    NEWTABLE + body for each table)
//     --delete       the batch DEL sends (both tables deleted)
//     --backend B    what-if, to price the kernel's set backends at commit:
//                    the hash sets as compiled (hash, the default: a declared
//                    size, so the kernel picks its fixed-size hash), declared
//                    without a size (rhash: the kernel picks its resizable
//                    hash), or with flags interval (pipapo)
//
// Prints what it wrote: `bytes=.. messages=.. SET=ELEMENTS...`.
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include <libmnl/libmnl.h>
#include <libnftnl/common.h>

#include "cni/error.h"
#include "config/config.h"
#include "fence/compile.h"
#include "nft/codec.h"
#include "nft/nft.h"

using namespace ef;

namespace {

constexpr uint32_t kFirstSeq = 1;

size_t count_messages(const std::vector<uint8_t>& batch) {
    size_t n = 0;
    for (size_t off = 0; off + sizeof(nlmsghdr) <= batch.size(); ++n)
        off += NLMSG_ALIGN(reinterpret_cast<const nlmsghdr*>(batch.data() + off)->nlmsg_len);
    return n;
}

int run(int argc, char** argv) {
    if (argc < 3) {
        std::cerr << "usage: ef_bench_batch CONFIG OUT [--namespace NS] [--name NAME] [--container-id ID]"
                     " [--create-only | --delete]\n";
        return 250;
    }
    std::string config_path = argv[1], out_path = argv[2];
    config::Pod pod{"sandboxes", "pod", "bench", "", {}};
    bool only_create = false, only_delete = false;
    std::string backend = "hash";
    for (int i = 3; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
        if (a == "--namespace") pod.namespace_ = value();
        else if (a == "--name") pod.name = value();
        else if (a == "--container-id") pod.container_id = value();
        else if (a == "--create-only") only_create = true;
        else if (a == "--delete") only_delete = true;
        else if (a == "--backend") backend = value();
        else {
            std::cerr << "ef_bench_batch: unknown option " << a << "\n";
            return 250;
        }
    }
    std::vector<uint8_t> batch;
    std::ostringstream elements;
    {
        std::ifstream in(config_path);
        std::stringstream text;
        text << in.rdbuf();
        if (!in) throw cni::Error(cni::kInvalidConfig, "cannot read " + config_path);
        nlohmann::json entry = config::find_entry(nlohmann::json::parse(text.str()));
        std::vector<config::Problem> problems;
        auto cfg = config::validate(entry, problems);
        if (!cfg) {
            for (const auto& p : problems) std::cerr << p.path << ": " << p.message << "\n";
            return 7;
        }
        auto profile = config::select_profile(*cfg, pod);
        if (!profile) throw cni::Error(cni::kInvalidConfig, "the pod matches no selector: nothing to install");
        fence::Ruleset rs = fence::compile(*profile, pod);
        if (backend != "hash" && backend != "rhash" && backend != "pipapo") {
            std::cerr << "ef_bench_batch: --backend hash, rhash or pipapo\n";
            return 250;
        }
        for (auto& set : rs.sets) {
            if (set.interval || set.name.rfind("allow", 0) != 0) continue;
            if (backend == "rhash") set.size = 0;
            if (backend == "pipapo") {
                set.interval = true;
                set.size = 0;
            }
        }
        nft::BatchLabels labels;
        batch = nft::encode_batch_labeled(rs, kFirstSeq, labels, false,
                                          only_create ? nft::BatchMode::create : nft::BatchMode::replace);
        if (only_delete) batch = nft::encode_delete_batch(kFirstSeq, labels);
        for (const auto& s : rs.sets) elements << " " << s.name << "=" << s.elements.size();
    }
    std::ofstream out(out_path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(batch.data()), std::streamsize(batch.size()));
    out.close();
    if (!out) throw cni::Error(cni::kInvalidConfig, "cannot write " + out_path);
    std::cout << "bytes=" << batch.size() << " messages=" << count_messages(batch) << elements.str() << "\n";
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const cni::Error& e) {
        std::cerr << "ef_bench_batch: " << e.msg << (e.details.empty() ? "" : "\n" + e.details) << "\n";
        return 1;
    } catch (const std::exception& e) {
        std::cerr << "ef_bench_batch: " << e.what() << "\n";
        return 1;
    }
}
