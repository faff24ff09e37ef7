// ef_bench_time: times whole processes the way a container runtime starts a
// CNI plugin (fork, exec with env and a stdin file, wait), for the benchmarks
// in tests/bench/. Setup and teardown commands run outside the timed region.
//
//   ef_bench_time [options] -- PROG [ARGS...]
//     --label L         name printed with the summary
//     --runs N          timed samples (default 20)
//     --warmup W        untimed samples first (default 3)
//     --batch K         processes per sample (default 1); a sample's time is
//                       from the first fork to the last exit
//     --concurrent      start a sample's K processes at once (default: one
//                       after another)
//     --setup CMD       `sh -c CMD` for each process before its sample starts
//     --teardown CMD    `sh -c CMD` for each process after its sample ended
//     --stdin FILE      the process's stdin (default /dev/null)
//     --netns PATH      the process starts in this network namespace
//     --env K=V         added to the inherited environment (repeatable)
//     --raw FILE        append one CSV line per timed sample
//     --expect-exit N   exit status every process must have (default 0)
//   ef_bench_time --summarize RAW
//       one summary line per label over all samples appended to RAW (runs
//       taken in interleaved chunks, so a noisy minute hits every variant)
//
// In CMD, FILE, PATH, V and ARGS, `{i}` becomes the process's index (unique
// across warm-up and timed runs), so each run can get a fresh netns.
//
// A process may report points in time on stdout as `mark NAME NS` (its
// CLOCK_MONOTONIC in ns; reported as microseconds since its fork) and
// any other number as `stat NAME VALUE` (NAME says the unit, e.g. commit_us).
// The summary line holds the median of each:
//   label=L n=20 median_us=.. p90_us=.. min_us=.. max_us=.. maxrss_kib=.. mark_NAME_us=.. stat_NAME=..
// maxrss_kib is the largest peak RSS of any process (wait4's ru_maxrss, as
// GNU time reports it). It also covers the forked copy of this runner before
// exec (about 1 MiB; `ef_bench_time -- /bin/true` shows it), so it is an upper bound.
#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct Options {
    std::string label = "run";
    int runs = 20;
    int warmup = 3;
    int batch = 1;
    bool concurrent = false;
    std::string setup, teardown, stdin_file = "/dev/null", netns, raw;
    std::vector<std::string> env;
    int expect_exit = 0;
    std::vector<std::string> argv;
};

[[noreturn]] void die(const std::string& why) {
    std::fprintf(stderr, "ef_bench_time: %s\n", why.c_str());
    std::exit(2);
}

// All of `text` as a number, or die naming what it was for.
template <class T>
T number(const std::string& what, const std::string& text) {
    T v{};
    const char* last = text.data() + text.size();
    auto [end, ec] = std::from_chars(text.data(), last, v);
    if (ec != std::errc() || end != last) die(what + ": not a number: \"" + text + "\"");
    return v;
}

int64_t now_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

std::string with_index(std::string s, long i) {
    const std::string key = "{i}", val = std::to_string(i);
    for (size_t at = s.find(key); at != std::string::npos; at = s.find(key, at + val.size()))
        s.replace(at, key.size(), val);
    return s;
}

Options parse(int argc, char** argv) {
    Options o;
    int i = 1;
    auto value = [&](const char* name) -> std::string {
        if (i + 1 >= argc) die(std::string(name) + " needs a value");
        return argv[++i];
    };
    for (; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--") {
            for (++i; i < argc; ++i) o.argv.emplace_back(argv[i]);
            break;
        }
        if (a == "--label") o.label = value("--label");
        else if (a == "--runs") o.runs = number<int>("--runs", value("--runs"));
        else if (a == "--warmup") o.warmup = number<int>("--warmup", value("--warmup"));
        else if (a == "--batch") o.batch = number<int>("--batch", value("--batch"));
        else if (a == "--concurrent") o.concurrent = true;
        else if (a == "--setup") o.setup = value("--setup");
        else if (a == "--teardown") o.teardown = value("--teardown");
        else if (a == "--stdin") o.stdin_file = value("--stdin");
        else if (a == "--netns") o.netns = value("--netns");
        else if (a == "--env") o.env.push_back(value("--env"));
        else if (a == "--raw") o.raw = value("--raw");
        else if (a == "--expect-exit") o.expect_exit = number<int>("--expect-exit", value("--expect-exit"));
        else die("unknown option " + a);
    }
    if (o.argv.empty()) die("no program given (after --)");
    if (o.runs < 1 || o.batch < 1 || o.warmup < 0) die("--runs and --batch must be >= 1");
    return o;
}

// Runs `sh -c cmd` for every command at once and waits for all; any failure
// is fatal (a benchmark on a broken setup measures nothing).
void run_shell_all(const std::vector<std::string>& cmds) {
    std::vector<pid_t> pids;
    for (const auto& c : cmds) {
        if (c.empty()) continue;
        pid_t pid = fork();
        if (pid < 0) die("fork: " + std::string(std::strerror(errno)));
        if (pid == 0) {
            execl("/bin/sh", "sh", "-c", c.c_str(), static_cast<char*>(nullptr));
            _exit(127);
        }
        pids.push_back(pid);
    }
    bool failed = false;
    for (pid_t pid : pids) {
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) failed = true;
    }
    if (failed) {
        std::string all;
        for (const auto& c : cmds) all += "\n  " + c;
        die("a setup/teardown command failed:" + all);
    }
}

std::string read_all(int fd) {
    std::string out;
    char buf[4096];
    lseek(fd, 0, SEEK_SET);
    for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) out.append(buf, size_t(n));
    return out;
}

struct Child {
    long index = 0;
    pid_t pid = -1;
    int out_fd = -1, err_fd = -1;
    int64_t started_ns = 0, exited_ns = 0;
    int status = 0;
    long maxrss_kib = 0;
};

// fork + exec of one process; what it prints goes to memory files.
void start(const Options& o, Child& c) {
    c.out_fd = memfd_create("stdout", MFD_CLOEXEC);
    c.err_fd = memfd_create("stderr", MFD_CLOEXEC);
    if (c.out_fd < 0 || c.err_fd < 0) die("memfd_create: " + std::string(std::strerror(errno)));
    std::string in_path = with_index(o.stdin_file, c.index);
    std::string ns_path = with_index(o.netns, c.index);
    std::vector<std::string> args, env;
    for (const auto& a : o.argv) args.push_back(with_index(a, c.index));
    std::map<std::string, std::string> overrides;
    for (const auto& kv : o.env) {
        size_t eq = kv.find('=');
        if (eq == std::string::npos) die("--env " + kv + " is not K=V");
        overrides[kv.substr(0, eq)] = with_index(kv.substr(eq + 1), c.index);
    }
    for (char** e = environ; *e; ++e) {
        std::string kv = *e;
        if (!overrides.contains(kv.substr(0, kv.find('=')))) env.push_back(kv);
    }
    for (const auto& [k, v] : overrides) env.emplace_back(k).append("=").append(v);
    std::vector<char*> cargs, cenv;
    for (auto& a : args) cargs.push_back(a.data());
    cargs.push_back(nullptr);
    for (auto& e : env) cenv.push_back(e.data());
    cenv.push_back(nullptr);

    c.started_ns = now_ns();
    c.pid = fork();
    if (c.pid < 0) die("fork: " + std::string(std::strerror(errno)));
    if (c.pid == 0) {
        if (!ns_path.empty()) {
            int fd = open(ns_path.c_str(), O_RDONLY | O_CLOEXEC);
            if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) _exit(126);
        }
        int in = open(in_path.c_str(), O_RDONLY | O_CLOEXEC);
        if (in < 0) _exit(125);
        dup2(in, STDIN_FILENO);
        dup2(c.out_fd, STDOUT_FILENO);
        dup2(c.err_fd, STDERR_FILENO);
        execve(cargs[0], cargs.data(), cenv.data());
        _exit(127);
    }
}

void reap(std::vector<Child>& children) {
    size_t left = children.size();
    while (left > 0) {
        int status = 0;
        rusage ru{};
        pid_t pid = wait4(-1, &status, 0, &ru);
        int64_t t = now_ns();
        if (pid < 0) {
            if (errno == EINTR) continue;
            die("wait4: " + std::string(std::strerror(errno)));
        }
        for (auto& c : children)
            if (c.pid == pid) {
                c.exited_ns = t;
                c.status = status;
                c.maxrss_kib = ru.ru_maxrss;
                --left;
            }
    }
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Nearest-rank percentile.
double percentile(std::vector<double> v, double p) {
    std::sort(v.begin(), v.end());
    auto rank = size_t(p * double(v.size()) + 0.999999);
    return v[std::clamp<size_t>(rank, 1, v.size()) - 1];
}

struct Sample {
    double wall_us = 0;
    long maxrss_kib = 0;
    std::map<std::string, double> values;  // mark_*/stat_* of its processes (batch 1: the one)
};

// Parses `mark NAME NS` / `stat NAME US` lines of one process's stdout.
void collect(const Child& c, const std::string& out, std::map<std::string, std::vector<double>>& into) {
    std::istringstream lines(out);
    std::string line;
    while (std::getline(lines, line)) {
        std::istringstream f(line);
        std::string kind, name;
        double v = 0;
        if (!(f >> kind >> name >> v)) continue;
        if (kind == "mark") into["mark_" + name + "_us"].push_back((v - double(c.started_ns)) / 1000.0);
        else if (kind == "stat") into["stat_" + name].push_back(v);
    }
}

Sample run_sample(const Options& o, long& next_index, bool check) {
    std::vector<Child> children(size_t(o.batch));
    std::vector<std::string> setups, teardowns;
    for (auto& c : children) {
        c.index = next_index++;
        setups.push_back(o.setup.empty() ? "" : with_index(o.setup, c.index));
        teardowns.push_back(o.teardown.empty() ? "" : with_index(o.teardown, c.index));
    }
    run_shell_all(setups);
    int64_t first = now_ns(), last = first;
    if (o.concurrent) {
        for (auto& c : children) start(o, c);
        reap(children);
    } else {
        for (auto& c : children) {
            std::vector<Child> one{c};
            start(o, one[0]);
            reap(one);
            c = one[0];
        }
    }
    Sample s;
    std::map<std::string, std::vector<double>> values;
    for (auto& c : children) {
        last = std::max(last, c.exited_ns);
        s.maxrss_kib = std::max(s.maxrss_kib, c.maxrss_kib);
        std::string out = read_all(c.out_fd), err = read_all(c.err_fd);
        close(c.out_fd);
        close(c.err_fd);
        bool ok = WIFEXITED(c.status) && WEXITSTATUS(c.status) == o.expect_exit;
        if (check && !ok) {
            std::fprintf(stderr,
                         "ef_bench_time: %s: process %ld exited with %s %d (expected %d)\nstdout:\n%s\nstderr:\n%s\n",
                         o.label.c_str(), c.index, WIFEXITED(c.status) ? "status" : "signal",
                         WIFEXITED(c.status) ? WEXITSTATUS(c.status) : WTERMSIG(c.status), o.expect_exit, out.c_str(),
                         err.c_str());
            run_shell_all(teardowns);
            std::exit(1);
        }
        collect(c, out, values);
    }
    s.wall_us = double(last - first) / 1000.0;
    for (auto& [k, v] : values) s.values[k] = median(v);
    run_shell_all(teardowns);
    return s;
}

// The summary line for one label's samples.
void print_summary(const std::string& label, const std::vector<Sample>& samples) {
    std::vector<double> walls;
    long rss = 0;
    std::map<std::string, std::vector<double>> values;
    for (const auto& s : samples) {
        walls.push_back(s.wall_us);
        rss = std::max(rss, s.maxrss_kib);
        for (const auto& [k, v] : s.values) values[k].push_back(v);
    }
    std::printf("label=%s n=%zu median_us=%.0f p90_us=%.0f min_us=%.0f max_us=%.0f maxrss_kib=%ld", label.c_str(),
                samples.size(), median(walls), percentile(walls, 0.9), *std::min_element(walls.begin(), walls.end()),
                *std::max_element(walls.begin(), walls.end()), rss);
    for (const auto& [k, v] : values) std::printf(" %s=%.2f", k.c_str(), median(v));
    std::printf("\n");
}

// Raw lines: label,sample,wall_us,maxrss_kib[,name=value...]
void append_raw(const std::string& path, const std::string& label, const std::vector<Sample>& samples) {
    std::ofstream raw(path, std::ios::app);
    for (size_t r = 0; r < samples.size(); ++r) {
        raw << label << "," << r << "," << samples[r].wall_us << "," << samples[r].maxrss_kib;
        for (const auto& [k, v] : samples[r].values) raw << "," << k << "=" << v;
        raw << "\n";
    }
}

// --summarize RAW: one summary line per label over every sample in RAW (in
// order of first appearance), so runs taken in interleaved chunks pool.
int summarize(const std::string& path) {
    std::ifstream in(path);
    if (!in) die("cannot read " + path);
    std::vector<std::string> order;
    std::map<std::string, std::vector<Sample>> by_label;
    std::string line;
    while (std::getline(in, line)) {
        std::vector<std::string> f;
        std::istringstream cols(line);
        for (std::string c; std::getline(cols, c, ',');) f.push_back(c);
        if (f.size() < 4) continue;
        Sample s;
        s.wall_us = number<double>(path, f[2]);
        s.maxrss_kib = number<long>(path, f[3]);
        for (size_t i = 4; i < f.size(); ++i) {
            size_t eq = f[i].find('=');
            if (eq != std::string::npos) s.values[f[i].substr(0, eq)] = number<double>(path, f[i].substr(eq + 1));
        }
        if (!by_label.contains(f[0])) order.push_back(f[0]);
        by_label[f[0]].push_back(s);
    }
    for (const auto& label : order) print_summary(label, by_label[label]);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc == 3 && std::string(argv[1]) == "--summarize") return summarize(argv[2]);
    Options o = parse(argc, argv);
    long index = 0;
    for (int w = 0; w < o.warmup; ++w) run_sample(o, index, true);
    std::vector<Sample> samples;
    samples.reserve(size_t(o.runs));
    for (int r = 0; r < o.runs; ++r) samples.push_back(run_sample(o, index, true));
    if (!o.raw.empty()) append_raw(o.raw, o.label, samples);
    print_summary(o.label, samples);
    return 0;
}
