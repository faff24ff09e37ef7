// probe: run in a sandbox pod (as the workload's UID) to prove the fence is
// there before the workload starts. reconcile: bring running pods' fences to
// the current config, once, with no daemon.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fcntl.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cni/error.h"
#include "commands.h"
#include "config_file.h"
#include "fence/diff.h"
#include "inspect/inspect.h"
#include "netns/netns.h"
#include "nft/nft.h"

namespace ef::ctl {
namespace {

// TEST-NET-1 (RFC 5737): no profile should allow it and nothing answers there,
// so an unfenced pod times out instead of reaching a real host.
constexpr const char* kDefaultProbeTarget = "192.0.2.1:9";

struct Target {
    sockaddr_storage addr{};
    socklen_t len = 0;
};

Target parse_target(const std::string& s) {
    Target t;
    std::string host, port;
    if (!s.empty() && s[0] == '[') {
        size_t close = s.find("]:");
        if (close == std::string::npos)
            throw cni::Error(cni::kInvalidConfig, "--target " + s + ": expected [ADDR]:PORT");
        host = s.substr(1, close - 1);
        port = s.substr(close + 2);
    } else {
        size_t colon = s.rfind(':');
        if (colon == std::string::npos) throw cni::Error(cni::kInvalidConfig, "--target " + s + ": expected ADDR:PORT");
        host = s.substr(0, colon);
        port = s.substr(colon + 1);
    }
    int p = 0;
    try {
        p = std::stoi(port);
    } catch (const std::exception&) {
        p = -1;
    }
    if (p < 1 || p > 65535) throw cni::Error(cni::kInvalidConfig, "--target " + s + ": bad port");
    auto* v4 = reinterpret_cast<sockaddr_in*>(&t.addr);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&t.addr);
    if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(static_cast<uint16_t>(p));
        t.len = sizeof(sockaddr_in);
    } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(static_cast<uint16_t>(p));
        t.len = sizeof(sockaddr_in6);
    } else {
        throw cni::Error(cni::kInvalidConfig, "--target " + s + ": not an IP address");
    }
    return t;
}

bool is_loopback(const Target& t) {
    if (t.addr.ss_family == AF_INET)
        return (ntohl(reinterpret_cast<const sockaddr_in*>(&t.addr)->sin_addr.s_addr) >> 24) == 127;
    return IN6_IS_ADDR_LOOPBACK(&reinterpret_cast<const sockaddr_in6*>(&t.addr)->sin6_addr);
}

// CAP_NET_RAW (linux/capability.h).
constexpr int kCapNetRaw = 13;

// Where this process holds CAP_NET_RAW or can get it, from /proc/self/status:
// "" when it cannot. Permitted, effective or ambient: it holds it now. In the
// bounding set without no_new_privs: exec of a binary with file capabilities
// (ping in many images) or of anything as root gives it back, so a workload
// UID with an empty effective set is not proof.
std::string net_raw_reach(const std::string& status_path = "/proc/self/status") {
    std::ifstream in(status_path);
    std::string line;
    bool no_new_privs = false;
    std::string held, bounding;
    auto has = [](const std::string& hex) {
        try {
            return (std::stoull(hex, nullptr, 16) >> kCapNetRaw) & 1;
        } catch (const std::exception&) {
            return 0ull;
        }
    };
    while (std::getline(in, line)) {
        std::istringstream f(line);
        std::string key, value;
        f >> key >> value;
        if ((key == "CapPrm:" || key == "CapEff:" || key == "CapAmb:") && has(value) && held.empty())
            held = key.substr(0, key.size() - 1);
        if (key == "CapBnd:" && has(value)) bounding = "CapBnd";
        if (key == "NoNewPrivs:") no_new_privs = value == "1";
    }
    if (!held.empty()) return "holds it (" + held + ")";
    if (!bounding.empty() && !no_new_privs)
        return "can regain it by exec (it is in the bounding set and no_new_privs is off)";
    return "";
}

// Exit codes: 0 fenced (refused at once); 2 connected (no fence); 3 timed out
// (no fence, or a fence that drops instead of refusing); 4 another error;
// 5 fenced, but the pod can use CAP_NET_RAW, which the fence cannot hold on
// every path (DESIGN.md "Raw frames": AF_XDP frames skip the egress hook),
// unless `allow_net_raw`.
int probe(const std::string& target_text, int timeout_ms, bool allow_net_raw) {
    Target t = parse_target(target_text);
    if (is_loopback(t)) {
        std::cerr << "probe: " << target_text << " is a loopback address, which every fence allows: pick a target "
                  << "outside the pod that no profile allows\n";
        return 4;
    }
    int fd = socket(t.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        std::cerr << "probe: socket: " << std::strerror(errno) << "\n";
        return 4;
    }
    auto start = std::chrono::steady_clock::now();
    int rc = connect(fd, reinterpret_cast<sockaddr*>(&t.addr), t.len);
    int err = rc == 0 ? 0 : errno;
    if (err == EINPROGRESS) {
        pollfd p{fd, POLLOUT, 0};
        int n = poll(&p, 1, timeout_ms);
        if (n == 0) {
            err = ETIMEDOUT;
        } else {
            socklen_t len = sizeof err;
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        }
    }
    close(fd);
    auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (err == ECONNREFUSED) {
        std::cout << "probe: fenced: a direct connection to " << target_text << " was refused in " << ms << " ms (uid "
                  << getuid() << ")\n";
        std::string reach = net_raw_reach();
        if (reach.empty()) return 0;
        if (allow_net_raw) {
            std::cout << "probe: warning: this process " << reach
                      << " CAP_NET_RAW; allowed by --allow-net-raw, but raw frames can leave the pod unfenced\n";
            return 0;
        }
        std::cerr << "probe: NOT FENCED FOR RAW FRAMES: this process " << reach
                  << " CAP_NET_RAW, with which frames sent on an AF_XDP socket leave the pod without passing any "
                     "netfilter hook; drop it (securityContext.capabilities.drop: [NET_RAW]) or pass "
                     "--allow-net-raw to accept the risk\n";
        return 5;
    }
    if (err == 0) {
        std::cerr << "probe: NOT FENCED: a direct connection to " << target_text << " from uid " << getuid()
                  << " succeeded; this pod's egress is open (is egress-fence in the node's CNI config? is this uid "
                     "exempt?)\n";
        return 2;
    }
    if (err == ETIMEDOUT) {
        std::cerr << "probe: NOT FENCED: a direct connection to " << target_text << " from uid " << getuid()
                  << " timed out after " << timeout_ms << " ms instead of being refused at once\n";
        return 3;
    }
    std::cerr << "probe: connection to " << target_text << " failed with " << std::strerror(err)
              << " instead of being refused: cannot tell whether the pod is fenced\n";
    return 4;
}

struct ReconcileOptions {
    std::string config;
    std::vector<std::string> netns_dirs;
    bool dry_run = false;
};

// Exit code 0 when every fenced pod matches (or now matches) the config;
// 1 when a pod was left as it was because its profile is gone or applying failed.
int reconcile(const ReconcileOptions& o) {
    config::PluginConfig cfg = load_config(o.config);
    auto dirs = o.netns_dirs.empty() ? inspect::kDefaultNetnsDirs : o.netns_dirs;
    int updated = 0, unchanged = 0, kept = 0;
    for (const auto& path : inspect::list_netns(dirs)) {
        try {
            netns::ScopedNetns inside(path);
            auto actual = nft::read_ruleset();
            if (!actual) continue;
            const auto& m = actual->meta;
            std::string who = m.pod_namespace + "/" + m.pod_name + " (" + path + ")";
            auto expected = inspect::expected_for(m, cfg, inspect::fence_device(*actual));
            if (!expected) {
                std::cout << who << ": KEPT its fence: profile \"" << m.profile << "\" is not in the config\n";
                ++kept;
                continue;
            }
            auto differences = fence::diff(*expected, *actual);
            if (differences.empty()) {
                ++unchanged;
                continue;
            }
            std::cout << who << ": " << (o.dry_run ? "would update" : "updating") << " (profile " << m.profile << ")\n";
            for (const auto& d : differences) std::cout << "  - " << d << "\n";
            if (!o.dry_run) nft::apply_ruleset(*expected);
            ++updated;
        } catch (const cni::Error& e) {
            std::cout << path << ": KEPT as it was: " << e.msg << "\n";
            ++kept;
        }
    }
    std::cout << "reconcile: " << updated << (o.dry_run ? " would be updated, " : " updated, ") << unchanged
              << " unchanged, " << kept << " kept as they were\n";
    return kept ? 1 : 0;
}

// The host's net.netfilter.nf_log_all_netns exists only in the initial netns, so a
// pod cannot reach it through its own /proc/sys. The chart bind-mounts the host's
// file (hostPath, type File) and this writes it: the sysctl's owner check is
// euid 0, so no capability is needed. Written in place (a sysctl file cannot be
// replaced by rename), then read back.
void set_log_all_netns(const std::string& path, bool on) {
    const char* want = on ? "1\n" : "0\n";
    int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) throw cni::Error(cni::kIoFailure, path + ": " + std::strerror(errno));
    ssize_t n = write(fd, want, 2);
    int err = errno;
    close(fd);
    if (n != 2) throw cni::Error(cni::kIoFailure, path + ": write: " + std::strerror(n < 0 ? err : EIO));
    std::ifstream in(path);
    std::string got;
    std::getline(in, got);
    if (got + "\n" != want) throw cni::Error(cni::kIoFailure, path + " reads \"" + got + "\" after writing " + want);
    std::cout << "net.netfilter.nf_log_all_netns = " << got << " (" << path << ")\n";
}

}  // namespace

void add_operate(CLI::App& app) {
    auto target = std::make_shared<std::string>(kDefaultProbeTarget);
    auto timeout = std::make_shared<int>(1000);
    auto allow_net_raw = std::make_shared<bool>(false);
    auto* p = app.add_subcommand("probe",
                                 "exit 0 only if a direct connection is refused at once and CAP_NET_RAW is out of "
                                 "reach (run in the pod as the workload's UID)");
    p->add_option("--target", *target,
                  "ADDR:PORT or [ADDR6]:PORT that no profile allows (default " + std::string(kDefaultProbeTarget) +
                      ")");
    p->add_option("--timeout", *timeout, "milliseconds to wait before calling the pod unfenced")
        ->check(CLI::Range(1, 60000));
    p->add_flag("--allow-net-raw", *allow_net_raw,
                "accept a pod that can use CAP_NET_RAW (its raw frames can bypass the fence)");
    p->callback([target, timeout, allow_net_raw] {
        int rc = probe(*target, *timeout, *allow_net_raw);
        if (rc) throw CLI::RuntimeError(rc);
    });

    auto log_file = std::make_shared<std::string>("/proc/sys/net/netfilter/nf_log_all_netns");
    auto log_off = std::make_shared<bool>(false);
    auto* l = app.add_subcommand(
        "log-all-netns",
        "set the host's net.netfilter.nf_log_all_netns so denials logged in pod netns reach the kernel log");
    l->add_option("--file", *log_file, "the host's sysctl file (bind-mounted into a pod; default " + *log_file + ")");
    l->add_flag("--off", *log_off, "set it to 0 instead of 1");
    l->callback([log_file, log_off] { set_log_all_netns(*log_file, !*log_off); });

    auto o = std::make_shared<ReconcileOptions>();
    auto* r = app.add_subcommand("reconcile", "once: replace running pods' fences that differ from the current config");
    r->add_option("--config", o->config, "plugin config: the egress-fence entry or a conflist holding it")->required();
    r->add_option("--netns-dir", o->netns_dirs,
                  "directory of pod netns files (repeatable; default /var/run/netns, /run/netns)");
    r->add_flag("--dry-run", o->dry_run, "print what would change, change nothing");
    r->callback([o] {
        int rc = reconcile(*o);
        if (rc) throw CLI::RuntimeError(rc);
    });
}

}  // namespace ef::ctl
