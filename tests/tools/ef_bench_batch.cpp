// ef_bench_batch: writes, once, the nf_tables batch egress-fence's ADD would
// send for a pod, so ef_bench_floor can replay it without doing any of the
// plugin's work at run time. Same library path as the plugin (validate,
// select_profile, compile, encode_batch), but the config is read from a file
// without the plugin's 16 MiB stdin limit, so rulesets the plugin cannot be
// handed can still be installed for the datapath runs.
//
//   ef_bench_batch CONFIG OUT [--namespace NS] [--name NAME] [--container-id ID]
//                  [--create-only | --delete]
//     CONFIG         the plugin's stdin (or a conflist / the bare entry)
//     --create-only  leave out each table's NEWTABLE + DELTABLE pair that
//                    makes the batch a replace: a plain create, for measuring
//                    what the replace costs on a fresh netns
//     --delete       a batch that only deletes the tables ADD creates (inet
//                    egress_fence, and netdev egress_fence when the fence has
//                    one), as DEL does
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
#include "ef_bench_batch_edit.h"
#include "fence/compile.h"
#include "nft/nft.h"

using namespace ef;

namespace {

constexpr uint32_t kFirstSeq = 1;

// A batch deleting every table the ADD batch creates (family and name taken
// from its DELTABLE messages, so it follows whatever tables the fence has).
std::vector<uint8_t> delete_batch(const std::vector<uint8_t>& add_batch) {
    std::vector<char> buf(4096);
    size_t off = 0;
    uint32_t seq = kFirstSeq;
    auto add = [&](nlmsghdr* h) { off += NLMSG_ALIGN(h->nlmsg_len); };
    add(nftnl_batch_begin(buf.data(), seq++));
    for (size_t at = 0; at + sizeof(nlmsghdr) <= add_batch.size();) {
        const auto* h = reinterpret_cast<const nlmsghdr*>(add_batch.data() + at);
        at += NLMSG_ALIGN(h->nlmsg_len);
        if (!bench::is_nftables(h) || bench::nft_type(h) != NFT_MSG_DELTABLE) continue;
        const auto* g = static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(h));
        const nlattr* name = nullptr;
        const auto* end = reinterpret_cast<const char*>(h) + h->nlmsg_len;
        for (const auto* a = static_cast<const nlattr*>(mnl_nlmsg_get_payload_offset(h, sizeof(nfgenmsg)));
             mnl_attr_ok(a, int(end - reinterpret_cast<const char*>(a))); a = mnl_attr_next(a))
            if (mnl_attr_get_type(a) == NFTA_TABLE_NAME) name = a;
        if (!name) continue;
        nlmsghdr* del = nftnl_nlmsg_build_hdr(buf.data() + off, NFT_MSG_DELTABLE, g->nfgen_family, NLM_F_ACK, seq++);
        mnl_attr_put_strz(del, NFTA_TABLE_NAME, mnl_attr_get_str(name));
        add(del);
    }
    add(nftnl_batch_end(buf.data() + off, seq));
    return {buf.begin(), buf.begin() + long(off)};
}

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
    for (int i = 3; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
        if (a == "--namespace") pod.namespace_ = value();
        else if (a == "--name") pod.name = value();
        else if (a == "--container-id") pod.container_id = value();
        else if (a == "--create-only") only_create = true;
        else if (a == "--delete") only_delete = true;
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
        batch = nft::encode_batch(rs, kFirstSeq);
        if (only_create) batch = bench::create_only(batch);
        if (only_delete) batch = delete_batch(batch);
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
