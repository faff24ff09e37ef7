// reconcile: bring running pods' fences to the current config, once, with no
// daemon. log-all-netns: the host sysctl that lets pod netns log denials.
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <iostream>

#include "cni/error.h"
#include "commands.h"
#include "config_file.h"
#include "fence/diff.h"
#include "inspect/inspect.h"
#include "netns/netns.h"
#include "nft/nft.h"

namespace ef::ctl {
namespace {

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
            auto expected = inspect::expected_for(m, cfg, inspect::fence_attachments(*actual));
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
