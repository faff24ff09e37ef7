// ef_bench_phases: egress-fence's ADD taken apart, to say where its time goes.
// Runs the same library calls in the same order as plugin/main.cpp and
// cmd_add (read stdin, parse it once, the envelope, decode + validate,
// select, compile, enter the netns, encode, commit, read back, print the
// result) and reports each as `stat NAME_us MICROSECONDS`, plus `mark main
// NS` / `mark end NS` so ef_bench_time can add process start (fork to main)
// and exit (end to reaped).
//
//   CNI_COMMAND=ADD CNI_NETNS=... CNI_ARGS=... ef_bench_phases [--replace] < stdin.json
//
// The batch is the create batch the plugin sends on a fresh netns;
// --replace sends the replace batch instead (NEWTABLE + DELTABLE + NEWTABLE),
// the plugin's re-ADD, which makes close() wait for a grace period.
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
#include "cni/stdin.h"
#include "config/config.h"
#include "config/envelope.h"
#include "config/json_read.h"
#include "fence/compile.h"
#include "netns/netns.h"
#include "nft/codec.h"
#include "nft/nft.h"
#include "nft/socket.h"

using namespace ef;

namespace {

long long now_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

long long cpu_ns() {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

// Each phase's wall time, and its CPU time (`NAME_cpu_us`: what a busy
// machine inflates less; the kernel's work in our system calls included).
class Phases {
  public:
    // Ends the current phase and names it.
    void done(const char* name) {
        long long t = now_ns(), c = cpu_ns();
        std::printf("stat %s_us %.1f\nstat %s_cpu_us %.1f\n", name, double(t - last_) / 1000.0, name,
                    double(c - last_cpu_) / 1000.0);
        last_ = t;
        last_cpu_ = c;
    }

  private:
    long long last_ = now_ns();
    long long last_cpu_ = cpu_ns();
};

int run(bool replace) {
    Phases p;
    cni::keep_heap();
    cni::Env env = cni::read_env();
    const cni::StdinBytes input = cni::read_stdin(config::kMaxInputBytes + 1, config::kJsonPadding);
    cni::prepare_heap(input.size);
    p.done("read_stdin");
    config::NetConf conf;
    {
        const config::JsonText parsed(input.view(), /*padded=*/true);
        p.done("json_parse");
        (void)config::read_envelope(parsed);
        conf = config::parse_netconf(parsed);
    }
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
        nft::BatchLabels labels;
        std::vector<uint8_t> batch = nft::encode_batch_labeled(
            rs, first, labels, false, replace ? nft::BatchMode::replace : nft::BatchMode::create);
        p.done("encode");
        s->take_seq(static_cast<uint32_t>(labels.size()));
        nft::BatchError e = s->send_batch(batch, first, labels.size() - 2);
        if (e.error) throw cni::Error(cni::kNftRejected, "nf_tables rejected the batch", std::to_string(e.error));
        batch = {};  // as apply_ruleset does: the batch is gone before the read-back
        p.done("commit");
        s.reset();
        p.done("socket_close");
        nft::verify_applied(rs);
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
        rc = run(argc > 1 && std::string(argv[1]) == "--replace");
    } catch (const cni::Error& e) {
        std::cerr << "ef_bench_phases: " << e.msg << " " << e.details << "\n";
    } catch (const std::exception& e) {
        std::cerr << "ef_bench_phases: " << e.what() << "\n";
    }
    std::printf("mark main %lld\nmark end %lld\n", t_main, now_ns());
    return rc;
}
