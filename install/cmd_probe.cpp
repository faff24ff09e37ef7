// probe: run in a sandbox pod (as the workload's UID, with its capabilities)
// to prove, before the workload starts, that the fence is there and that this
// process cannot step around it.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "cni/error.h"
#include "commands.h"
#include "nft/nft.h"
#include "probe/privileges.h"
#include "probe/refusal.h"

namespace ef::ctl {
namespace {

// TEST-NET-1 (RFC 5737): no profile should allow it and nothing answers there,
// so an unfenced pod times out instead of reaching a real host.
constexpr const char* kDefaultProbeTarget = "192.0.2.1:9";

// Exit codes (docs/operating.md, "Commands"). 2-4 and 8: the fence is missing or
// cannot be seen; 5-7: it is there, but this process could step around it.
constexpr int kConnected = 2;
constexpr int kTimedOut = 3;
constexpr int kCannotTell = 4;
constexpr int kNetRawReach = 5;
constexpr int kUidChange = 6;
constexpr int kNetAdminReach = 7;
constexpr int kRefusedOutside = 8;

// Other traffic of the pod during an attempt (IPv6 router solicitations and
// MLD reports in its first seconds, a sidecar) can only make one look as if it
// left the pod, never as if the fence refused it: a few tries, a little apart,
// find a quiet one.
constexpr int kRefusalAttempts = 5;
constexpr std::chrono::milliseconds kAttemptPause{20};

struct ProbeOptions {
    std::string target = kDefaultProbeTarget;
    int timeout_ms = 1000;
    bool allow_net_raw = false;
    bool allow_uid_change = false;
    bool allow_net_admin = false;
};

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

// The errno a direct connection to `t` ends with (0: it connected).
int connect_errno(const Target& t, int timeout_ms) {
    int fd = socket(t.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return errno;
    int rc = connect(fd, reinterpret_cast<const sockaddr*>(&t.addr), t.len);
    int err = rc == 0 ? 0 : errno;
    if (err == EINPROGRESS) {
        pollfd p{fd, POLLOUT, 0};
        if (poll(&p, 1, timeout_ms) == 0) {
            err = ETIMEDOUT;
        } else {
            socklen_t len = sizeof err;
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        }
    }
    close(fd);
    return err;
}

probe::Privileges own_privileges() {
    std::ifstream in("/proc/self/status");
    std::ostringstream text;
    text << in.rdbuf();
    return probe::parse_status(text.str());
}

std::string read_proc(const char* path) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error(std::string(path) + ": cannot be read");
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

// The packet counters of this process's netns (/proc/net follows the reader's netns).
probe::StackCounters stack_counters() {
    probe::StackCounters c;
    c.interfaces = probe::parse_net_dev(read_proc("/proc/net/dev"));
    c.tcp_out_rsts = probe::parse_tcp_out_rsts(read_proc("/proc/net/snmp"));
    return c;
}

// One connection attempt, and for a refused one where it was refused.
struct Attempt {
    int err = 0;
    double ms = 0;
    probe::RefusalVerdict verdict{probe::RefusalOrigin::kNoReset, ""};
};

Attempt attempt(const Target& t, int timeout_ms) {
    Attempt a;
    probe::StackCounters before = stack_counters();
    auto start = std::chrono::steady_clock::now();
    a.err = connect_errno(t, timeout_ms);
    a.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (a.err == ECONNREFUSED) a.verdict = probe::classify_refusal(before, stack_counters());
    return a;
}

// The exempt UIDs of the fence in this netns, as nft writes them, or why they
// cannot be read: nfnetlink answers only a process with CAP_NET_ADMIN, which a
// workload should not have.
std::string fence_exempt_uids() {
    try {
        auto rs = nft::read_ruleset();
        if (!rs) return "unknown (no table inet egress_fence in this netns)";
        for (const auto& set : rs->sets) {
            if (set.name != "exempt_uids") continue;
            std::string out;
            for (const auto& e : set.elements) out += (out.empty() ? "" : ", ") + fence::to_nft_text(set, e);
            return out.empty() ? "none" : out;
        }
        return "none";
    } catch (const cni::Error& e) {
        return "unknown (reading the fence needs CAP_NET_ADMIN: " + e.msg + ")";
    }
}

// One way around the fence this process has: the code that refuses it, the
// flag that accepts it, and what to do.
struct Finding {
    int code;
    bool allowed;
    std::string flag;
    std::string headline;
    std::vector<std::string> reasons;
    std::string remedy;
};

std::vector<Finding> findings_for(const probe::Privileges& p, const ProbeOptions& o) {
    std::vector<Finding> out;
    if (auto reach = probe::capability_reach(p, probe::kCapNetAdmin); !reach.empty())
        out.push_back({kNetAdminReach,
                       o.allow_net_admin,
                       "--allow-net-admin",
                       "this process could rewrite or delete the fence (CAP_NET_ADMIN)",
                       {"CAP_NET_ADMIN: " + reach},
                       "drop it (securityContext.capabilities.drop: [ALL] or [NET_ADMIN])"});
    if (auto paths = probe::uid_change_paths(p); !paths.empty())
        out.push_back({kUidChange, o.allow_uid_change, "--allow-uid-change",
                       "this process could own sockets as another UID, and sockets of an exempt UID go anywhere "
                       "(exempt UIDs of this pod's fence: " +
                           fence_exempt_uids() + ")",
                       paths,
                       "run the workload as a non-root UID with allowPrivilegeEscalation: false and "
                       "capabilities.drop: [ALL] (docs/threat-model.md, \"The exempt UID is the one door\")"});
    if (auto reach = probe::capability_reach(p, probe::kCapNetRaw); !reach.empty())
        out.push_back({kNetRawReach,
                       o.allow_net_raw,
                       "--allow-net-raw",
                       "this process could send raw frames that leave the pod without passing any netfilter hook "
                       "(CAP_NET_RAW: AF_XDP sockets)",
                       {"CAP_NET_RAW: " + reach},
                       "drop it (securityContext.capabilities.drop: [NET_RAW])"});
    return out;
}

// Every finding is printed; the exit code is the first refused one's, in the
// order NET_ADMIN (7), UID change (6), NET_RAW (5): the worst first.
int report(const std::vector<Finding>& findings) {
    int rc = 0;
    for (const auto& f : findings) {
        std::ostream& out = f.allowed ? std::cout : std::cerr;
        out << (f.allowed ? "probe: warning (accepted by " + f.flag + "): "
                          : "probe: NOT FENCED AGAINST THIS PROCESS: ")
            << f.headline << ":\n";
        for (const auto& r : f.reasons) out << "  - " << r << "\n";
        if (!f.allowed) {
            out << "  " << f.remedy << ", or pass " << f.flag << " to accept the risk\n";
            if (rc == 0) rc = f.code;
        }
    }
    return rc;
}

int probe(const ProbeOptions& o) {
    Target t = parse_target(o.target);
    if (is_loopback(t)) {
        std::cerr << "probe: " << o.target << " is a loopback address, which every fence allows: pick a target "
                  << "outside the pod that no profile allows\n";
        return kCannotTell;
    }
    Attempt a;
    int tries = 0;
    try {
        while (true) {
            a = attempt(t, o.timeout_ms);
            ++tries;
            if (a.err != ECONNREFUSED || a.verdict.origin == probe::RefusalOrigin::kInsideNetns ||
                tries == kRefusalAttempts)
                break;
            std::this_thread::sleep_for(kAttemptPause);
        }
    } catch (const std::exception& e) {
        std::cerr << "probe: cannot tell where a refusal came from (" << e.what()
                  << "): cannot tell whether the pod is fenced\n";
        return kCannotTell;
    }
    if (a.err == 0) {
        std::cerr << "probe: NOT FENCED: a direct connection to " << o.target << " from uid " << geteuid()
                  << " succeeded; this pod's egress is open (is egress-fence in the node's CNI config? is this uid "
                     "exempt?)\n";
        return kConnected;
    }
    if (a.err == ETIMEDOUT) {
        std::cerr << "probe: NOT FENCED: a direct connection to " << o.target << " from uid " << geteuid()
                  << " timed out after " << o.timeout_ms << " ms instead of being refused at once\n";
        return kTimedOut;
    }
    if (a.err != ECONNREFUSED) {
        std::cerr << "probe: connection to " << o.target << " failed with " << std::strerror(a.err)
                  << " instead of being refused: cannot tell whether the pod is fenced\n";
        return kCannotTell;
    }
    switch (a.verdict.origin) {
        case probe::RefusalOrigin::kInsideNetns: break;
        case probe::RefusalOrigin::kLeftPod:
            std::cerr << "probe: NOT FENCED: a direct connection to " << o.target << " from uid " << geteuid()
                      << " was refused, but not inside this pod: " << a.verdict.detail << " on each of " << tries
                      << " attempts, so the refusal came from outside it (an upstream firewall's reject, a closed port "
                         "on the target) or the pod's profile allows this target; is egress-fence in the node's CNI "
                         "config? Pick a target that no profile allows and that the pod would reach if it were "
                         "unfenced\n";
            return kRefusedOutside;
        case probe::RefusalOrigin::kOwnStack:
            std::cerr << "probe: " << o.target << " is an address of this pod (" << a.verdict.detail
                      << "), which no fence stops: pick a target outside the pod that no profile allows\n";
            return kCannotTell;
        case probe::RefusalOrigin::kNoReset:
            std::cerr << "probe: connection to " << o.target << " was refused, but " << a.verdict.detail
                      << ": cannot tell whether the pod is fenced\n";
            return kCannotTell;
    }
    std::cout << "probe: fenced: a direct connection to " << o.target << " was refused inside this pod in " << a.ms
              << " ms (" << a.verdict.detail << "; uid " << geteuid() << ")\n";
    probe::Privileges privileges;
    try {
        privileges = own_privileges();
    } catch (const std::exception& e) {
        std::cerr << "probe: cannot tell what this process could do to the fence: " << e.what() << "\n";
        return kCannotTell;
    }
    int rc = report(findings_for(privileges, o));
    // Setuid bits are honoured on exec while no_new_privs is off, and the probe
    // cannot see every binary the image holds.
    if (!privileges.no_new_privs)
        std::cout << "probe: note: no_new_privs is off: a setuid binary owned by an exempt UID in the image would "
                     "still let this process become that UID; set allowPrivilegeEscalation: false\n";
    return rc;
}

}  // namespace

void add_probe(CLI::App& app) {
    auto o = std::make_shared<ProbeOptions>();
    auto* p = app.add_subcommand("probe",
                                 "exit 0 only if a direct connection is refused at once, inside the pod (no packet "
                                 "leaves it), and this process can neither change its UID nor use CAP_NET_ADMIN or "
                                 "CAP_NET_RAW (run in the pod as the workload, with its UID and capabilities)");
    p->add_option("--target", o->target,
                  "ADDR:PORT or [ADDR6]:PORT outside the pod that no profile allows and that the pod would reach if "
                  "it were unfenced (default " +
                      std::string(kDefaultProbeTarget) + ")");
    p->add_option("--timeout", o->timeout_ms, "milliseconds to wait before calling the pod unfenced")
        ->check(CLI::Range(1, 60000));
    p->add_flag("--allow-net-raw", o->allow_net_raw,
                "accept a process that can use CAP_NET_RAW (its raw frames can bypass the fence)");
    p->add_flag("--allow-uid-change", o->allow_uid_change,
                "accept a process that could change its UID (root, CAP_SETUID/CAP_SETGID, or regainable by exec): "
                "it could become an exempt UID");
    p->add_flag("--allow-net-admin", o->allow_net_admin,
                "accept a process that can use CAP_NET_ADMIN (it could rewrite the fence)");
    p->callback([o] {
        int rc = probe(*o);
        if (rc) throw CLI::RuntimeError(rc);
    });
}

}  // namespace ef::ctl
