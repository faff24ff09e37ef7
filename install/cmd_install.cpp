// install, uninstall, verify, pause: what the DaemonSet runs on every node
// (DESIGN.md "Installer"). The decisions live in lib/install; this file reads
// the flags, orders the steps and reports.
#include <signal.h>  // NOLINT(modernize-deprecated-headers): POSIX sigset_t, sigwait
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <thread>

#include "cni/error.h"
#include "commands.h"
#include "config/config.h"
#include "config_file.h"
#include "inspect/inspect.h"
#include "install/bin_dir.h"
#include "install/bundle.h"
#include "install/conflist.h"
#include "install/files.h"
#include "install/log_follow.h"
#include "metrics_server.h"

namespace ef::ctl {
namespace {

using install::Json;

struct InstallFlags {
    std::string bin_dir;
    std::string conf_dir;
    std::string plugin_config;
    std::string mode = "owned";
    int wait_for_primary = 0;
    std::string plugin_binary;
    bool then_pause = false;
    bool skip_bin_dir_check = false;
    std::string follow_log;
    // While paused: serve the node's metrics (metrics_server.h).
    std::vector<std::string> metrics_listen;
    int metrics_port = kDefaultMetricsPort;
    std::vector<std::string> metrics_netns_dirs;
    double metrics_scan_timeout = 5;
};

// Refuses a bin dir that does not hold `network`'s plugins (install/bin_dir.h).
void require_runtime_bin_dir(const install::Network& network, const std::string& bin_dir) {
    if (auto p = install::bin_dir_problem(network, bin_dir)) throw cni::Error(cni::kInvalidConfig, p->msg, p->details);
}

// The plugin config as its entry (the file may hold the entry or a whole
// conflist). Every problem is reported at once; nothing is touched before.
Json load_install_entry(const std::string& path) {
    std::string text = install::read_file(path);
    nlohmann::json doc;
    try {
        // Decoded as the plugin decodes its stdin (limits, repeated keys, 1e400).
        doc = config::parse_json(text);
    } catch (const cni::Error& e) {
        throw cni::Error(cni::kDecodeFailure, "plugin config " + path + " is not valid JSON: " + e.msg);
    }
    nlohmann::json entry = config::find_entry(doc);
    std::vector<config::Problem> problems;
    config::validate(entry, problems);
    if (!problems.empty()) {
        std::string details;
        for (const auto& p : problems) details += "  " + p.path + ": " + p.message + "\n";
        throw cni::Error(cni::kInvalidConfig,
                         "plugin config " + path + " has " + std::to_string(problems.size()) +
                             " problem(s); fix them, nothing was installed",
                         details);
    }
    // Keep the file's key order in the conflist we write.
    return Json::parse(entry.dump());
}

// The default plugin: the bundle next to this executable. Run through the
// bundled loader, /proc/self/exe is the loader inside egress-fence.d-*/.
std::string default_plugin_binary() {
    char buf[4096];
    ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) throw cni::Error(cni::kInvalidEnvironment, "cannot read /proc/self/exe; pass --plugin-binary");
    std::string dir = install::dir_of(std::string(buf, size_t(n)));
    if (install::base_of(std::string(buf, size_t(n))).starts_with("ld-linux")) dir = install::dir_of(dir);
    return dir + "/" + std::string(install::kPluginName);
}

install::Network wait_for_primary(const std::string& conf_dir, int seconds) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    for (bool first = true;; first = false) {
        auto found = install::discover(install::read_conf_dir(conf_dir), false);
        if (found.chosen) return *found.chosen;
        if (first)
            std::cout << "waiting up to " << seconds << "s for a primary CNI config in " << conf_dir << std::endl;
        if (std::chrono::steady_clock::now() >= deadline) {
            std::string details;
            for (const auto& s : found.skipped) details += "  skipped " + s.file + ": " + s.reason + "\n";
            throw cni::Error(cni::kTryAgain,
                             "no primary CNI config in " + conf_dir + " after " + std::to_string(seconds) +
                                 "s; install the primary CNI (or raise --wait-for-primary)",
                             details);
        }
        std::this_thread::sleep_for(std::chrono::seconds(1));
    }
}

// Undoes a chained entry in any primary file; used by uninstall and when
// switching to owned mode.
bool unchain_all(const std::string& conf_dir) {
    bool changed = false;
    for (const auto& f : install::read_conf_dir(conf_dir)) {
        if (f.name == install::kOwnedFile) continue;
        if (auto restored = install::render_unchained(f))
            changed |= install::replace_file(conf_dir + "/" + f.name, *restored, 0644);
    }
    return changed;
}

// When switching modes the new config is written before the old one is undone,
// so the runtime never sees a conf dir without the fence in between.
void write_config(const InstallFlags& fl, const Json& entry, const install::Network& primary) {
    std::string owned_path = fl.conf_dir + "/" + std::string(install::kOwnedFile);
    if (fl.mode == "owned") {
        // A new copy is no more readable than its source (which may name credentials).
        mode_t mode = install::file_mode(fl.conf_dir + "/" + primary.file, 0644);
        bool changed = install::replace_file(owned_path, install::render_owned(primary, entry), mode);
        std::cout << (changed ? "wrote " : "unchanged ") << owned_path << " (chain of " << primary.file << ")\n";
        // The digest covers the primary's own part, which unchaining leaves as it is.
        if (unchain_all(fl.conf_dir)) std::cout << "removed the chained entry (switching to owned mode)\n";
        return;
    }
    std::string path = fl.conf_dir + "/" + primary.file;
    auto current = install::read_file(path);
    bool changed = install::replace_file(path, install::render_chained({primary.file, current}, entry), 0644);
    std::cout << (changed ? "chained egress-fence into " : "unchanged ") << path << "\n";
    if (install::remove_file(owned_path)) std::cout << "removed " << owned_path << " (switching to chained mode)\n";
}

void pause_until_signal() {
    // What was said before the pause must reach the container log now, not at exit.
    std::cout.flush();
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, nullptr);
    int sig = 0;
    sigwait(&set, &sig);
}

// Until SIGTERM or SIGINT: prints every line appended to `file` (the plugin's
// log) to stdout, so `kubectl logs` shows the node's plugin outcomes.
void follow_until_signal(const std::string& file) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, nullptr);
    install::LogFollower follower(file);
    std::cout << "following " << file << std::endl;
    const timespec tick{0, 250'000'000};
    for (;;) {
        follower.poll([](const std::string& line) { std::cout << line << '\n'; });
        std::cout.flush();
        if (sigtimedwait(&set, nullptr, &tick) > 0) return;
    }
}

struct VerifyFlags {
    std::string conf_dir, bin_dir, plugin_config;
    bool skip_bin_dir_check = false;
};

// What verify says when the node is fenced; throws cni::Error saying why not.
std::string verify_text(const VerifyFlags& fl) {
    std::optional<Json> expected;
    if (!fl.plugin_config.empty()) expected = load_install_entry(fl.plugin_config);
    auto files = install::read_conf_dir(fl.conf_dir);
    auto verdict = install::verify(files, expected);
    if (verdict.fenced && !fl.bin_dir.empty()) {
        if (auto problem = install::plugin_problem(fl.bin_dir)) verdict = {false, verdict.file, *problem};
    }
    // The chain the runtime uses must find its plugins where ours is.
    if (verdict.fenced && !fl.bin_dir.empty() && !fl.skip_bin_dir_check) {
        auto chosen = install::discover(files, true).chosen;
        if (chosen)
            if (auto p = install::bin_dir_problem(*chosen, fl.bin_dir))
                throw cni::Error(cni::kInvalidConfig, "not fenced: " + p->msg, p->details);
    }
    if (!verdict.fenced) throw cni::Error(cni::kInvalidConfig, "not fenced: " + verdict.reason);
    return "fenced: " + verdict.reason;
}

void run_verify(const VerifyFlags& fl) { std::cout << verify_text(fl) << "\n"; }

// The main container's wait: the node's metrics server (which also follows
// the log), or the log alone, or nothing.
void pause_after_install(const InstallFlags& fl) {
    if (!fl.metrics_listen.empty()) {
        MetricsServerOptions m;
        m.addresses = fl.metrics_listen;
        m.port = fl.metrics_port;
        m.netns_dirs = fl.metrics_netns_dirs;
        m.scan_timeout_seconds = fl.metrics_scan_timeout;
        m.follow_log = fl.follow_log;
        std::string config = fl.plugin_config;
        m.config = [config]() -> std::optional<config::PluginConfig> { return load_config(config); };
        // /healthz is the liveness probe's verify.
        VerifyFlags ve{fl.conf_dir, fl.bin_dir, fl.plugin_config, fl.skip_bin_dir_check};
        m.health = [ve] { return verify_text(ve); };
        serve_metrics(m);
    } else if (!fl.follow_log.empty()) {
        follow_until_signal(fl.follow_log);
    } else {
        pause_until_signal();
    }
}

void run_install(const InstallFlags& fl) {
    // Everything that can refuse comes before anything is written.
    Json entry = load_install_entry(fl.plugin_config);
    auto primary = wait_for_primary(fl.conf_dir, fl.wait_for_primary);
    install::check_chainable(primary);
    if (!fl.skip_bin_dir_check) require_runtime_bin_dir(primary, fl.bin_dir);
    std::string plugin = fl.plugin_binary.empty() ? default_plugin_binary() : fl.plugin_binary;
    bool copied = install::install_plugin(plugin, fl.bin_dir);
    std::cout << (copied ? "installed " : "unchanged ") << fl.bin_dir << "/" << install::kPluginName << "\n";
    write_config(fl, entry, primary);
    if (fl.then_pause) pause_after_install(fl);
}

struct UninstallFlags {
    std::string bin_dir, conf_dir;
    std::vector<std::string> netns_dirs;
    bool wait = false;
    int poll_seconds = 10;
    bool then_pause = false;
};

// The pod netns on this node that still hold a fence, and those that could not
// be read (counted as fenced: the plugin must stay while unsure).
struct FenceScan {
    std::vector<std::string> fenced;
    std::vector<std::string> unreadable;
    bool none() const { return fenced.empty() && unreadable.empty(); }
};

FenceScan scan_fences(const std::vector<std::string>& dirs) {
    FenceScan scan;
    for (const auto& ns : inspect::list_netns(dirs.empty() ? inspect::kDefaultNetnsDirs : dirs)) {
        try {
            if (inspect::read_pod(ns, nullptr)) scan.fenced.push_back(ns);
        } catch (const cni::Error& e) {
            scan.unreadable.push_back(ns + " (" + e.msg + ")");
        }
    }
    return scan;
}

// Why the plugin is kept, for the log and uninstall-status.
std::string waiting_reason(const FenceScan& scan, const std::string& bin_dir) {
    std::string why = "keeping " + bin_dir + "/" + std::string(install::kPluginName) + ": ";
    if (!scan.fenced.empty()) {
        why += std::to_string(scan.fenced.size()) + " pod netns still hold an egress-fence table:";
        for (const auto& ns : scan.fenced) why += " " + ns;
        why += ";";
    }
    if (!scan.unreadable.empty()) {
        why += " " + std::to_string(scan.unreadable.size()) + " netns could not be read:";
        for (const auto& ns : scan.unreadable) why += " " + ns;
        why += ";";
    }
    return why +
           " their DEL needs the plugin (CRI-O runs DEL from the config cached at ADD), so it is removed once "
           "none is left";
}

volatile sig_atomic_t g_stop = 0;

void on_stop_signal(int /*sig*/) { g_stop = 1; }

// Sleeps `seconds` in short steps; true when SIGTERM or SIGINT came instead.
bool sleep_or_signal(int seconds) {
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
    for (int step = 0; step < seconds * 10 && !g_stop; ++step)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    return g_stop != 0;
}

// The config goes first, so no new pod gets the fence; the plugin stays while
// any netns still holds one.
void run_uninstall(const UninstallFlags& fl) {
    std::string owned_path = fl.conf_dir + "/" + std::string(install::kOwnedFile);
    if (install::remove_file(owned_path)) std::cout << "removed " << owned_path << "\n";
    if (unchain_all(fl.conf_dir)) std::cout << "removed the egress-fence entry from the primary config\n";
    for (;;) {
        FenceScan scan = scan_fences(fl.netns_dirs);
        if (scan.none()) {
            if (install::uninstall_plugin(fl.bin_dir))
                std::cout << "removed the plugin from " << fl.bin_dir << std::endl;
            break;
        }
        std::cout << waiting_reason(scan, fl.bin_dir) << std::endl;
        if (!fl.wait || sleep_or_signal(fl.poll_seconds)) return;
    }
    if (fl.then_pause) pause_until_signal();
}

// uninstall's readiness: done when neither the config nor the plugin is left.
void run_uninstall_status(const UninstallFlags& fl) {
    auto files = install::read_conf_dir(fl.conf_dir);
    if (auto chosen = install::discover(files, true).chosen)
        for (const auto& p : chosen->list["plugins"])
            if (install::is_fence_entry(p))
                throw cni::Error(cni::kInvalidConfig, "not uninstalled: " + chosen->file + " still runs egress-fence");
    std::string launcher = fl.bin_dir + "/" + std::string(install::kPluginName);
    if (::access(launcher.c_str(), F_OK) == 0) {
        FenceScan scan = scan_fences(fl.netns_dirs);
        throw cni::Error(cni::kTryAgain, "not uninstalled yet: " + (scan.none() ? launcher + " is still there"
                                                                                : waiting_reason(scan, fl.bin_dir)));
    }
    std::cout << "uninstalled: no egress-fence config in " << fl.conf_dir << ", no plugin in " << fl.bin_dir << "\n";
}

}  // namespace

void add_install(CLI::App& app) {
    auto fl = std::make_shared<InstallFlags>();
    auto* install = app.add_subcommand("install",
                                       "copy the plugin into the CNI bin dir and chain it into the "
                                       "CNI config the runtime uses (idempotent)");
    install->add_option("--cni-bin-dir", fl->bin_dir, "host CNI plugin dir")->required();
    install->add_option("--cni-conf-dir", fl->conf_dir, "host CNI config dir")->required();
    install->add_option("--plugin-config", fl->plugin_config, "the egress-fence entry (or a conflist holding it)")
        ->required();
    install->add_option("--mode", fl->mode, "owned: write 00-egress-fence.conflist; chained: edit the primary file")
        ->check(CLI::IsMember({"owned", "chained"}))
        ->capture_default_str();
    install->add_option("--wait-for-primary", fl->wait_for_primary, "seconds to wait for a primary CNI config")
        ->check(CLI::Range(0, 86400))
        ->capture_default_str();
    install->add_option("--plugin-binary", fl->plugin_binary,
                        "the plugin to copy (default: egress-fence next to this program, with egress-fence.d/)");
    install->add_flag("--skip-bin-dir-check", fl->skip_bin_dir_check,
                      "install even if the bin dir lacks the primary chain's plugins (a runtime searching several "
                      "dirs)");
    auto* then_pause = install->add_flag(
        "--then-pause", fl->then_pause,
        "after installing, sleep until SIGTERM (the DaemonSet's main container: a restart re-installs)");
    install
        ->add_option("--follow-log", fl->follow_log,
                     "while paused, print every line the plugin appends to this log file (its logFile)")
        ->needs(then_pause);
    install
        ->add_option("--metrics-listen", fl->metrics_listen,
                     "while paused, serve the node's metrics (/metrics, and /healthz: verify) on this IPv4 address "
                     "(repeatable)")
        ->needs(then_pause);
    install->add_option("--metrics-port", fl->metrics_port, "the metrics server's TCP port")
        ->check(CLI::Range(1, 65535))
        ->capture_default_str();
    install->add_option("--metrics-netns-dir", fl->metrics_netns_dirs,
                        "where the metrics server finds pod netns (repeatable; default /var/run/netns, /run/netns)");
    install
        ->add_option("--metrics-scan-timeout", fl->metrics_scan_timeout,
                     "seconds a scrape may spend reading netns before it answers with what it has")
        ->check(CLI::Range(0.0, 600.0))
        ->capture_default_str();
    install->callback([fl] { run_install(*fl); });

    auto un = std::make_shared<UninstallFlags>();
    auto* uninstall = app.add_subcommand("uninstall",
                                         "remove egress-fence's config (restoring an edited primary file), then "
                                         "the plugin once no pod netns holds a fence");
    uninstall->add_option("--cni-bin-dir", un->bin_dir, "host CNI plugin dir")->required();
    uninstall->add_option("--cni-conf-dir", un->conf_dir, "host CNI config dir")->required();
    uninstall->add_option("--netns-dir", un->netns_dirs,
                          "where the runtime pins pod netns (default /var/run/netns and /run/netns)");
    uninstall->add_flag("--wait", un->wait, "keep checking until no netns holds a fence, then remove the plugin");
    uninstall->add_option("--poll-seconds", un->poll_seconds, "how often --wait checks")
        ->check(CLI::Range(1, 3600))
        ->capture_default_str();
    uninstall->add_flag("--then-pause", un->then_pause, "after removing everything, sleep until SIGTERM");
    uninstall->callback([un] { run_uninstall(*un); });

    auto* status = app.add_subcommand(
        "uninstall-status", "exit 0 only when neither egress-fence's config nor its plugin is left (says why not)");
    status->add_option("--cni-bin-dir", un->bin_dir, "host CNI plugin dir")->required();
    status->add_option("--cni-conf-dir", un->conf_dir, "host CNI config dir")->required();
    status->add_option("--netns-dir", un->netns_dirs, "where the runtime pins pod netns");
    status->callback([un] { run_uninstall_status(*un); });

    auto ve = std::make_shared<VerifyFlags>();
    auto* verify = app.add_subcommand("verify", "exit 0 only if the config the runtime picks fences pods");
    verify->add_option("--cni-conf-dir", ve->conf_dir, "host CNI config dir")->required();
    verify->add_option("--cni-bin-dir", ve->bin_dir,
                       "also check the installed plugin there, and that the chain's other plugins are there too");
    verify->add_option("--plugin-config", ve->plugin_config, "also require the installed entry to equal this config");
    verify->add_flag("--skip-bin-dir-check", ve->skip_bin_dir_check,
                     "do not require the chain's other plugins in --cni-bin-dir");
    verify->callback([ve] { run_verify(*ve); });

    app.add_subcommand("pause", "sleep until SIGTERM or SIGINT; nothing else")->callback(pause_until_signal);

    auto follow = std::make_shared<std::string>();
    auto* follow_log = app.add_subcommand(
        "follow-log", "print every line appended to the plugin's log file until SIGTERM (survives its rotation)");
    follow_log->add_option("--file", *follow, "the plugin's logFile")->required();
    follow_log->callback([follow] { follow_until_signal(*follow); });
}

}  // namespace ef::ctl
