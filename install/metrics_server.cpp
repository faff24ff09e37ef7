#include "metrics_server.h"

#include <arpa/inet.h>
#include <grp.h>
#include <linux/capability.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>  // NOLINT(modernize-deprecated-headers): POSIX sigset_t, sigwait, kill
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CivetServer.h>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <mutex>
#include <thread>

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>

#include "cni/error.h"
#include "inspect/families.h"
#include "inspect/inspect.h"
#include "inspect/invocations.h"
#include "install/files.h"
#include "install/log_follow.h"
#include "prom.h"

namespace ef::ctl {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

constexpr uid_t kNobody = 65534;
// How long the serving process waits for an answer beyond the scan's own
// limit, and for a health check, before it answers without one.
constexpr auto kGrace = std::chrono::seconds(10);
// A message is never near this; a length beyond it means a broken stream.
constexpr uint32_t kMaxMessage = 256u << 20;

// --- messages between the two processes ------------------------------------
// A message is a 4-byte sequence number, a 4-byte length and that many bytes
// of CBOR (nlohmann's binary JSON), in native byte order: both ends are this
// program. A question carries null, an answer the families or the health.

bool write_all(int fd, const void* data, size_t n) {
    const auto* p = static_cast<const char*>(data);
    while (n > 0) {
        ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w;
        n -= static_cast<size_t>(w);
    }
    return true;
}

// Reads n bytes, waiting at most until `deadline`; false on end of stream,
// error or timeout.
bool read_all(int fd, void* data, size_t n, Clock::time_point deadline) {
    auto* p = static_cast<char*>(data);
    while (n > 0) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0) return false;
        pollfd pfd{fd, POLLIN, 0};
        int r = ::poll(&pfd, 1, static_cast<int>(left));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        ssize_t got = ::read(fd, p, n);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return false;
        p += got;
        n -= static_cast<size_t>(got);
    }
    return true;
}

bool send_message(int fd, uint32_t seq, const json& body) {
    std::vector<uint8_t> bytes = json::to_cbor(body);
    uint32_t header[2] = {seq, static_cast<uint32_t>(bytes.size())};
    return write_all(fd, header, sizeof header) && write_all(fd, bytes.data(), bytes.size());
}

enum class Read { ok, timeout, broken };

// One message (its sequence number and body); waits for its start until
// `deadline`. Once it has started it is read whole (the writer is in the
// middle of it), so a timeout never leaves the stream out of step.
Read read_message(int fd, Clock::time_point deadline, uint32_t& seq, json& body) {
    uint32_t header[2] = {};
    pollfd pfd{fd, POLLIN, 0};
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0) return Read::timeout;
        int r = ::poll(&pfd, 1, static_cast<int>(left));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return Read::broken;
        if (r == 0) return Read::timeout;
        break;
    }
    auto whole = Clock::now() + kGrace;
    if (!read_all(fd, header, sizeof header, whole) || header[1] > kMaxMessage) return Read::broken;
    std::vector<uint8_t> bytes(header[1]);
    if (!read_all(fd, bytes.data(), bytes.size(), whole)) return Read::broken;
    seq = header[0];
    try {
        body = json::from_cbor(bytes);
    } catch (const json::exception&) {
        return Read::broken;
    }
    return Read::ok;
}

// --- the serving process -----------------------------------------------------

// Questions to the scanning process over one socket, one at a time.
class Channel {
  public:
    explicit Channel(int fd) : fd_(fd) {}

    // The answer, or nullopt when none came within `timeout`. A broken
    // stream ends the serving process: the scanning one then exits too and
    // the container's restart starts both again.
    std::optional<json> ask(Clock::duration timeout) {
        std::lock_guard<std::mutex> lock(mutex_);
        uint32_t seq = ++seq_;
        if (!send_message(fd_, seq, nullptr)) broken();
        auto deadline = Clock::now() + timeout;
        for (;;) {
            uint32_t got = 0;
            json body;
            switch (read_message(fd_, deadline, got, body)) {
                case Read::timeout: return std::nullopt;
                case Read::broken: broken();
                case Read::ok: break;
            }
            // An answer to a question given up on earlier is skipped.
            if (got == seq) return body;
        }
    }

  private:
    [[noreturn]] static void broken() {
        std::cerr << "egress-fence-ctl metrics: the scanning process is gone" << std::endl;
        ::_exit(1);
    }

    int fd_;
    std::mutex mutex_;
    uint32_t seq_ = 0;
};

class ScrapeCollectable : public prometheus::Collectable {
  public:
    ScrapeCollectable(Channel& channel, double scan_timeout) : channel_(channel), scan_timeout_(scan_timeout) {}

    std::vector<prometheus::MetricFamily> Collect() const override {
        auto start = Clock::now();
        auto limit = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(scan_timeout_)) + kGrace;
        if (auto answer = channel_.ask(limit)) {
            try {
                return to_prometheus(inspect::families_from_json(*answer));
            } catch (const std::exception&) {
                // Falls through: said as an incomplete scrape.
            }
        }
        // No answer in time: what it has is that it has nothing.
        double waited = std::chrono::duration<double>(Clock::now() - start).count();
        std::vector<inspect::Family> families = {inspect::build_info()};
        for (auto& f : inspect::scan_families(true, waited)) families.push_back(std::move(f));
        return to_prometheus(families);
    }

  private:
    Channel& channel_;
    double scan_timeout_;
};

// civetweb's callbacks carry no pointer of ours: the serving process has one
// health channel.
Channel* g_health = nullptr;

// GET /healthz: the scanning process's health check (verify, in the chart).
int begin_request(mg_connection* conn) {
    const mg_request_info* ri = mg_get_request_info(conn);
    if (ri == nullptr || ri->local_uri == nullptr || std::strcmp(ri->local_uri, "/healthz") != 0) return 0;
    bool ok = false;
    std::string text = "no answer from egress-fence-ctl's scanning process in time";
    if (auto answer = g_health->ask(kGrace); answer && answer->is_object()) {
        ok = answer->value("ok", false);
        text = answer->value("text", "");
    }
    if (text.empty() || text.back() != '\n') text += '\n';
    int status = ok ? 200 : 503;
    mg_printf(conn,
              "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %zu\r\n"
              "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
              status, ok ? "OK" : "Service Unavailable", text.size());
    mg_write(conn, text.data(), text.size());
    return status;
}

// After each request: a scrape of a busy node builds megabytes of families
// in a worker thread, which glibc would otherwise keep for that thread.
void end_request(const mg_connection* /*conn*/, int /*status*/) { ::malloc_trim(0); }

int log_message(const mg_connection* /*conn*/, const char* message) {
    std::cerr << "egress-fence-ctl metrics: " << message << std::endl;
    return 1;
}

// uid/gid 65534, no supplementary group, no capability in any set,
// no_new_privs, not dumpable. Throws cni::Error saying what failed.
void drop_privileges() {
    auto fail = [](const std::string& what) {
        throw cni::Error(cni::kInvalidEnvironment,
                         "the metrics server cannot drop its privileges: " + what + ": " + std::strerror(errno),
                         "its HTTP side runs as uid/gid 65534 with no capability; as root that takes CAP_SETUID and "
                         "CAP_SETGID");
    };
    // Best effort (it takes CAP_SETPCAP, which the chart does not grant): with
    // no_new_privs nothing left in the bounding set can come back anyway.
    for (int cap = 0; cap < 64; ++cap)
        if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno == EINVAL) break;
    if (::getuid() == 0 || ::geteuid() == 0 || ::getgid() == 0 || ::getegid() == 0) {
        if (::setgroups(0, nullptr) != 0) fail("setgroups");
        if (::setresgid(kNobody, kNobody, kNobody) != 0) fail("setresgid(65534)");
        if (::setresuid(kNobody, kNobody, kNobody) != 0) fail("setresuid(65534)");
    }
    if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) fail("clearing ambient");
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct none[2] = {};
    if (::syscall(SYS_capset, &header, none) != 0) fail("capset");
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail("PR_SET_NO_NEW_PRIVS");
    if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) fail("PR_SET_DUMPABLE");
    __user_cap_data_struct held[2] = {};
    if (::syscall(SYS_capget, &header, held) != 0) fail("capget");
    for (const auto& d : held)
        if (d.effective != 0 || d.permitted != 0 || d.inheritable != 0) {
            errno = EPERM;
            fail("a capability is still held");
        }
}

// The serving process: never returns (it is a fork of the caller).
[[noreturn]] void run_serving(const MetricsServerOptions& o, const std::string& ports, int scrape_fd, int health_fd,
                              pid_t scanner) {
    Channel scrape(scrape_fd), health(health_fd);
    int code = 0;
    try {
        drop_privileges();
        // Ends with the scanning process (set after the UID change, which clears it).
        if (::prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) != 0 || ::getppid() != scanner) ::_exit(1);
        g_health = &health;
        // One malloc arena for civetweb's worker threads: each would keep the
        // peak of the scrapes it served in an arena of its own (measured: 90
        // MiB over 500 netns with four).
        ::mallopt(M_ARENA_MAX, 1);
        CivetCallbacks callbacks;
        callbacks.begin_request = begin_request;
        callbacks.end_request = end_request;
        callbacks.log_message = log_message;
        prometheus::Exposer exposer({"listening_ports", ports, "num_threads", "4"}, &callbacks);
        auto collectable = std::make_shared<ScrapeCollectable>(scrape, o.scan_timeout_seconds);
        exposer.RegisterCollectable(collectable);
        (void)send_message(scrape_fd, 0, {{"ready", true}});
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        int sig = 0;
        sigwait(&set, &sig);
    } catch (const cni::Error& e) {
        (void)send_message(scrape_fd, 0, {{"error", e.msg + (e.details.empty() ? "" : " (" + e.details + ")")}});
        code = 3;
    } catch (const std::exception& e) {
        // CivetServer throws when it cannot listen; civetweb said why on stderr.
        (void)send_message(scrape_fd, 0, {{"error", std::string("cannot listen on ") + ports + ": " + e.what()}});
        code = 3;
    }
    std::cout.flush();
    ::_exit(code);
}

// --- the scanning process -------------------------------------------------------

class Scanner {
  public:
    Scanner(const MetricsServerOptions& o, int scrape_fd, int health_fd)
        : o_(o), scrape_fd_(scrape_fd), health_fd_(health_fd) {
        if (!o.follow_log.empty()) follower_.emplace(o.follow_log);
    }

    void follow() {
        if (!follower_) return;
        follower_->poll([this](const std::string& line) {
            std::cout << line << '\n';
            counts_.add_line(line);
        });
        std::cout.flush();
    }

    bool following() const { return follower_.has_value(); }

    // Answers one question waiting on the scrape socket; false at its end.
    bool answer_scrape() {
        uint32_t seq = 0;
        json question;
        if (read_message(scrape_fd_, Clock::now() + kGrace, seq, question) != Read::ok) return false;
        return send_message(scrape_fd_, seq, inspect::families_to_json(scrape()));
    }

    bool answer_health() {
        uint32_t seq = 0;
        json question;
        if (read_message(health_fd_, Clock::now() + kGrace, seq, question) != Read::ok) return false;
        return send_message(health_fd_, seq, health());
    }

  private:
    std::vector<inspect::Family> scrape() {
        auto start = Clock::now();
        auto deadline = start + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(o_.scan_timeout_seconds));
        std::optional<config::PluginConfig> cfg;
        try {
            if (o_.config) cfg = o_.config();
        } catch (const cni::Error& e) {
            std::cerr << "egress-fence-ctl metrics: not comparing with the config: " << e.msg << std::endl;
        }
        auto dirs = o_.netns_dirs.empty() ? inspect::kDefaultNetnsDirs : o_.netns_dirs;
        // A long scan still answers the kubelet's health checks between two netns.
        auto between = [this] {
            pollfd pfd{health_fd_, POLLIN, 0};
            if (::poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN)) (void)answer_health();
        };
        inspect::NodeScan s = inspect::scan_node(dirs, cfg ? &*cfg : nullptr, deadline, between);
        std::vector<inspect::Family> out = {inspect::build_info()};
        for (auto& f : inspect::fence_families(s.pods, s.unreadable.size(), cfg.has_value()))
            out.push_back(std::move(f));
        double took = std::chrono::duration<double>(Clock::now() - start).count();
        for (auto& f : inspect::scan_families(s.not_reached > 0, took)) out.push_back(std::move(f));
        if (follower_) {
            follow();
            for (auto& f : counts_.families()) out.push_back(std::move(f));
        }
        return out;
    }

    json health() {
        try {
            return {{"ok", true}, {"text", o_.health ? o_.health() : "ok"}};
        } catch (const cni::Error& e) {
            return {{"ok", false}, {"text", e.msg + (e.details.empty() ? "" : "\n" + e.details)}};
        } catch (const std::exception& e) {
            return {{"ok", false}, {"text", std::string("internal error: ") + e.what()}};
        }
    }

    const MetricsServerOptions& o_;
    int scrape_fd_, health_fd_;
    std::optional<install::LogFollower> follower_;
    inspect::InvocationCounts counts_;
};

// civetweb's listening_ports: "a:p,b:p".
std::string listening_ports(const MetricsServerOptions& o) {
    if (o.addresses.empty()) throw cni::Error(cni::kInvalidConfig, "no address to listen on");
    if (o.port < 1 || o.port > 65535)
        throw cni::Error(cni::kInvalidConfig, "port " + std::to_string(o.port) + " is not a TCP port");
    std::string ports;
    for (const auto& a : o.addresses) {
        in_addr v4{};
        if (::inet_pton(AF_INET, a.c_str(), &v4) != 1) {
            in6_addr v6{};
            if (::inet_pton(AF_INET6, a.c_str(), &v6) == 1)
                throw cni::Error(cni::kInvalidConfig,
                                 "cannot listen on " + a + ": this build's HTTP server (Debian's civetweb) has no IPv6",
                                 "give an IPv4 address of the node (or 0.0.0.0), or turn the metrics server off");
            throw cni::Error(cni::kInvalidConfig, "cannot listen on \"" + a + "\": not an IPv4 address");
        }
        if (!ports.empty()) ports += ',';
        ports += a + ":" + std::to_string(o.port);
    }
    return ports;
}

// Ends the serving process and reaps it (once: a reaped pid may be reused).
void stop(pid_t child) {
    ::kill(child, SIGTERM);
    for (int i = 0; i < 60; ++i) {
        pid_t r = ::waitpid(child, nullptr, WNOHANG);
        if (r == child || (r < 0 && errno == ECHILD)) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
}

// Why the serving process ended, for the error that ends the server.
std::string exit_text(int status) {
    if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return std::string("was killed by signal ") + strsignal(WTERMSIG(status));
    return "stopped";
}

}  // namespace

void serve_metrics(const MetricsServerOptions& o) {
    const std::string ports = listening_ports(o);
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGCHLD);
    // Blocked before the fork: the serving process waits for them with sigwait.
    sigprocmask(SIG_BLOCK, &signals, nullptr);
    int scrape_pair[2], health_pair[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, scrape_pair) != 0 ||
        ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, health_pair) != 0)
        install::throw_errno("cannot create the socket pair of", "the metrics server");
    install::Fd scrape(scrape_pair[0]), scrape_child(scrape_pair[1]);
    install::Fd health(health_pair[0]), health_child(health_pair[1]);
    std::cout.flush();
    std::cerr.flush();
    const pid_t self = ::getpid();
    const pid_t child = ::fork();
    if (child < 0) install::throw_errno("cannot fork", "the metrics server");
    if (child == 0) {
        ::close(scrape.release());
        ::close(health.release());
        run_serving(o, ports, scrape_child.get(), health_child.get(), self);
    }
    ::close(scrape_child.release());
    ::close(health_child.release());

    // The serving process says whether it listens.
    uint32_t hello_seq = 1;
    json hello;
    if (read_message(scrape.get(), Clock::now() + std::chrono::seconds(30), hello_seq, hello) != Read::ok ||
        hello_seq != 0 || !hello.is_object() || !hello.value("ready", false)) {
        stop(child);
        std::string why = hello.is_object() ? hello.value("error", "") : "";
        throw cni::Error(cni::kInvalidEnvironment,
                         "the metrics server did not start: " + (why.empty() ? "no word from its HTTP process" : why));
    }
    int sigfd = ::signalfd(-1, &signals, SFD_CLOEXEC);
    if (sigfd < 0) {
        stop(child);
        install::throw_errno("cannot create a signalfd for", "the metrics server");
    }
    install::Fd sig(sigfd);
    Scanner scanner(o, scrape.get(), health.get());
    std::cout << "metrics: serving http://" << ports << " /metrics and /healthz" << std::endl;
    if (scanner.following()) std::cout << "following " << o.follow_log << std::endl;
    for (;;) {
        scanner.follow();
        pollfd fds[3] = {{sig.get(), POLLIN, 0}, {scrape.get(), POLLIN, 0}, {health.get(), POLLIN, 0}};
        int r = ::poll(fds, 3, scanner.following() ? 250 : -1);
        if (r < 0 && errno != EINTR) {
            stop(child);
            install::throw_errno("poll failed in", "the metrics server");
        }
        if (fds[0].revents & POLLIN) {
            signalfd_siginfo info{};
            if (::read(sig.get(), &info, sizeof info) == static_cast<ssize_t>(sizeof info) &&
                info.ssi_signo != SIGCHLD) {
                stop(child);
                return;
            }
        }
        bool gone = ((fds[1].revents & (POLLIN | POLLHUP)) && !scanner.answer_scrape()) ||
                    ((fds[2].revents & (POLLIN | POLLHUP)) && !scanner.answer_health());
        int status = 0;
        // Its end of the sockets closes as it exits, a moment before it can be reaped.
        for (int i = 0; i < (gone ? 20 : 1); ++i) {
            if (::waitpid(child, &status, WNOHANG) == child)
                throw cni::Error(cni::kInternal, "the metrics server's HTTP process " + exit_text(status));
            if (gone) std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        if (gone) {
            stop(child);
            throw cni::Error(cni::kInternal, "the metrics server's HTTP process stopped answering");
        }
    }
}

}  // namespace ef::ctl
