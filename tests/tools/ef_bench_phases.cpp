// ef_bench_phases: egress-fence's ADD taken apart, to say where its time goes.
// Runs the same library calls in the same order as plugin/main.cpp and
// cmd_add (read stdin, decode + validate, select, compile, enter the netns,
// encode, commit, read back, print the result) and reports each as
// `stat NAME_us MICROSECONDS`, plus `mark main NS` / `mark end NS` so ef_bench_time can
// add process start (fork to main) and exit (end to reaped).
//
//   CNI_COMMAND=ADD CNI_NETNS=... CNI_ARGS=... ef_bench_phases [--create-only] < stdin.json
//
// --create-only is a what-if: the batch without its NEWTABLE + DELTABLE
// pairs (a plain create, for a netns that has no fence yet), to show what
// the plugin's ADD would cost without the close() wait a replace brings.
//
// One difference, on purpose: the plugin reads the table back on the socket
// that committed and closes it afterwards; here the socket is closed first,
// so the close (which on this kernel waits for nf_tables' deferred cleanup of
// the transaction, an RCU grace period, when the commit freed objects) is a
// phase of its own and the read-back is not mixed into it.
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <iostream>
#include <optional>
#include <string>

#include "cni/error.h"
#include "cni/protocol.h"
#include "config/config.h"
#include "ef_bench_batch_edit.h"
#include "fence/compile.h"
#include "netns/netns.h"
#include "nft/nft.h"
#include "nft/socket.h"

using namespace ef;

namespace {

long long now_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

class Phases {
  public:
    // Ends the current phase and names it.
    void done(const char* name) {
        long long t = now_ns();
        std::printf("stat %s_us %.1f\n", name, double(t - last_) / 1000.0);
        last_ = t;
    }

  private:
    long long last_ = now_ns();
};

std::string read_stdin() {
    std::string in;
    char buf[65536];
    for (ssize_t n; (n = read(STDIN_FILENO, buf, sizeof buf)) > 0;) in.append(buf, size_t(n));
    return in;
}

int run(bool create_only) {
    Phases p;
    cni::Env env = cni::read_env();
    std::string input = read_stdin();
    p.done("read_stdin");
    (void)config::parse_json(input);
    p.done("json_decode");
    config::NetConf conf = config::parse_netconf(input);  // decodes again, then validates
    p.done("decode_and_validate");
    cni::Args args = cni::parse_args(env.args);
    config::Pod pod{args.pod_namespace,
                    args.pod_name,
                    args.infra_container_id.empty() ? env.container_id : args.infra_container_id,
                    args.pod_uid,
                    conf.pod_annotations,
                    conf.annotations_delivered};
    auto profile = config::select_profile_ref(conf.plugin, pod);
    if (!profile) throw cni::Error(cni::kInvalidConfig, "the pod matches no selector");
    p.done("select");
    fence::Ruleset rs = fence::compile(profile->head, *profile->allow, pod, {{fence::kDefaultDevice, {}}});
    p.done("compile");
    {
        netns::ScopedNetns inside(env.netns);
        p.done("enter_netns");
        std::optional<nft::Socket> s(std::in_place);
        p.done("socket_open");
        uint32_t first = s->take_seq(0);
        std::vector<uint8_t> batch = nft::encode_batch(rs, first);
        if (create_only) batch = bench::create_only(batch);
        p.done("encode");
        s->take_seq(4096);
        size_t acks = 0;
        for (size_t off = 0; off < batch.size();) {
            const auto* h = reinterpret_cast<const nlmsghdr*>(batch.data() + off);
            if (h->nlmsg_flags & NLM_F_ACK) ++acks;
            off += NLMSG_ALIGN(h->nlmsg_len);
        }
        nft::BatchError e = s->send_batch(batch, first, acks);
        if (e.error) throw cni::Error(cni::kNftRejected, "nf_tables rejected the batch", std::to_string(e.error));
        batch = {};  // as apply_ruleset does: the batch is gone before the read-back
        p.done("commit");
        s.reset();
        p.done("socket_close");
        // Compared as apply_ruleset compares, without a copy of `rs`.
        auto got = nft::read_ruleset();
        bool meta_ok = got && got->meta == nft::fit_metadata(rs.meta);
        if (got) got->meta = rs.meta;
        if (!meta_ok || !(*got == rs)) throw cni::Error(cni::kNftRejected, "read-back differs");
        p.done("read_back");
    }
    p.done("leave_netns");
    std::string out = cni::result_for_version(conf.prev_result ? &*conf.prev_result : nullptr, conf.cni_version).dump();
    p.done("result_json");
    (void)out;
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    long long t_main = now_ns();
    int rc = 1;
    try {
        rc = run(argc > 1 && std::string(argv[1]) == "--create-only");
    } catch (const cni::Error& e) {
        std::cerr << "ef_bench_phases: " << e.msg << " " << e.details << "\n";
    } catch (const std::exception& e) {
        std::cerr << "ef_bench_phases: " << e.what() << "\n";
    }
    std::printf("mark main %lld\nmark end %lld\n", t_main, now_ns());
    return rc;
}
