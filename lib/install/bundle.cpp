#include "install/bundle.h"

#include <dirent.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include <nlohmann/json.hpp>

#include "cni/error.h"
#include "install/files.h"
#include "install/sha256.h"

namespace ef::install {
namespace {

const std::string kLink = std::string(kPluginName) + std::string(kBundleSuffix);  // egress-fence.d
const std::string kVersionPrefix = kLink + "-";                                   // egress-fence.d-<digest>
const std::string kTempPrefix = ".egress-fence.d-tmp-";

struct BundleFile {
    std::string name;
    std::string bytes;
    mode_t mode;
};

std::vector<std::string> list_dir(const std::string& dir) {
    std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
    if (!d) {
        if (errno == ENOENT) return {};
        throw_errno("cannot list", dir);
    }
    std::vector<std::string> names;
    while (const dirent* e = ::readdir(d.get())) {
        std::string name = e->d_name;
        if (name != "." && name != "..") names.push_back(name);
    }
    std::sort(names.begin(), names.end());
    return names;
}

std::vector<BundleFile> read_bundle(const std::string& dir) {
    std::vector<BundleFile> files;
    const std::string prefix = dir + "/";
    for (const auto& name : list_dir(dir)) {
        struct stat st {};
        std::string path = prefix + name;
        if (::stat(path.c_str(), &st) != 0) throw_errno("cannot stat", path);
        if (S_ISREG(st.st_mode)) files.push_back({name, read_file(path), mode_t(st.st_mode & 0777)});
    }
    return files;
}

std::string bundle_digest(const std::vector<BundleFile>& files) {
    std::string all;
    for (const auto& f : files) all += f.name + '\0' + std::to_string(f.mode) + '\0' + sha256_hex(f.bytes) + '\0';
    return sha256_hex(all).substr(0, 16);
}

struct VersionRun {
    int exit_code = -1;
    std::string output;
};

// Runs `plugin` as a runtime would for VERSION: empty stdin, stdout captured.
// Stdin is an empty pipe, not /dev/null, which a minimal container may lack.
VersionRun run_version(const std::string& plugin) {
    int fds[2], in_fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw_errno("cannot create a pipe to run", plugin);
    Fd read_end(fds[0]), write_end(fds[1]);
    if (::pipe2(in_fds, O_CLOEXEC) != 0) throw_errno("cannot create a pipe to run", plugin);
    Fd stdin_read(in_fds[0]);
    ::close(in_fds[1]);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, stdin_read.get(), 0);
    posix_spawn_file_actions_adddup2(&actions, write_end.get(), 1);
    std::string arg0 = plugin;
    char* argv[] = {arg0.data(), nullptr};
    char env_command[] = "CNI_COMMAND=VERSION";
    char env_path[] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
    char* envp[] = {env_command, env_path, nullptr};
    pid_t pid = -1;
    int rc = ::posix_spawn(&pid, plugin.c_str(), &actions, nullptr, argv, envp);
    posix_spawn_file_actions_destroy(&actions);
    VersionRun run;
    if (rc != 0) {
        run.output = std::string("cannot execute: ") + std::strerror(rc);
        return run;
    }
    write_end = Fd();
    char buf[4096];
    ssize_t n;
    while ((n = ::read(read_end.get(), buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
        if (n > 0) run.output.append(buf, size_t(n));
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return run;
}

bool is_dir(const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string link_target(const std::string& path) {
    char buf[4096];
    ssize_t n = ::readlink(path.c_str(), buf, sizeof buf - 1);
    return n < 0 ? std::string{} : std::string(buf, size_t(n));
}

void remove_tree(const std::string& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        const std::string prefix = path + "/";
        for (const auto& name : list_dir(path)) remove_tree(prefix + name);
        if (::rmdir(path.c_str()) != 0) throw_errno("cannot remove", path);
    } else if (::unlink(path.c_str()) != 0) {
        throw_errno("cannot remove", path);
    }
}

// Writes the bundle under a temp name, then renames the complete dir to its
// content-addressed name: a dir by that name is always whole.
void put_version(const std::vector<BundleFile>& files, const std::string& bin_dir, const std::string& version) {
    std::string final_path = bin_dir + "/" + version;
    if (is_dir(final_path)) return;
    std::string tmp = bin_dir + "/" + kTempPrefix + "XXXXXX";
    if (!::mkdtemp(tmp.data())) throw_errno("cannot create a temp dir in", bin_dir);
    try {
        for (const auto& f : files) replace_file(tmp + "/" + f.name, f.bytes, f.mode);
        if (::chmod(tmp.c_str(), 0755) != 0) throw_errno("cannot set the mode of", tmp);
        if (::rename(tmp.c_str(), final_path.c_str()) != 0) throw_errno("cannot rename into place", final_path);
    } catch (...) {
        remove_tree(tmp);
        throw;
    }
    sync_dir(bin_dir);
}

// Points egress-fence.d at `version` with one rename.
void swap_link(const std::string& bin_dir, const std::string& version) {
    std::string link = bin_dir + "/" + kLink;
    if (link_target(link) == version) return;
    if (is_dir(link))
        throw cni::Error(cni::kIoFailure, link + " is a directory, not the symlink egress-fence-ctl manages",
                         "remove it (egress-fence-ctl uninstall) and install again");
    std::string tmp = bin_dir + "/" + kTempPrefix + "link";
    ::unlink(tmp.c_str());
    if (::symlink(version.c_str(), tmp.c_str()) != 0) throw_errno("cannot create symlink", tmp);
    if (::rename(tmp.c_str(), link.c_str()) != 0) throw_errno("cannot rename symlink onto", link);
    sync_dir(bin_dir);
}

// Removes versions other than `keep` and `previous`, and leftovers of an
// interrupted install.
void prune(const std::string& bin_dir, const std::string& keep, const std::string& previous) {
    const std::string prefix = bin_dir + "/";
    for (const auto& name : list_dir(bin_dir)) {
        bool version = name.starts_with(kVersionPrefix) && name != keep && name != previous;
        if (version || name.starts_with(kTempPrefix)) remove_tree(prefix + name);
    }
}

}  // namespace

bool install_plugin(const std::string& plugin, const std::string& bin_dir) {
    std::string launcher = read_file(plugin);
    std::string bundle_dir = plugin + std::string(kBundleSuffix);
    bool changed = false;
    struct stat st {};
    if (::stat(bundle_dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
        auto files = read_bundle(bundle_dir);
        std::string version = kVersionPrefix + bundle_digest(files);
        std::string previous = link_target(bin_dir + "/" + kLink);
        changed = previous != version;
        put_version(files, bin_dir, version);
        swap_link(bin_dir, version);
        prune(bin_dir, version, previous);
    }
    // The launcher last: it only runs what the symlink names, which is complete by now.
    changed |= replace_file(bin_dir + "/" + std::string(kPluginName), launcher, 0755);
    return changed;
}

bool uninstall_plugin(const std::string& bin_dir) {
    const std::string prefix = bin_dir + "/";
    bool existed = remove_file(prefix + std::string(kPluginName));
    for (const auto& name : list_dir(bin_dir)) {
        if (name == kLink || name.starts_with(kVersionPrefix) || name.starts_with(kTempPrefix)) {
            remove_tree(prefix + name);
            existed = true;
        }
    }
    if (existed) sync_dir(bin_dir);
    return existed;
}

std::optional<std::string> plugin_problem(const std::string& bin_dir) {
    std::string launcher = bin_dir + "/" + std::string(kPluginName);
    if (::access(launcher.c_str(), X_OK) != 0) return launcher + " is missing or not executable";
    // Running it is the only check that covers everything the runtime needs:
    // launcher, bundle link, loader, libraries and the program itself.
    auto run = run_version(launcher);
    if (run.exit_code != 0)
        return launcher + " does not run (CNI_COMMAND=VERSION exited " + std::to_string(run.exit_code) +
               "): " + run.output.substr(0, 300);
    try {
        if (nlohmann::json::parse(run.output).at("supportedVersions").is_array()) return std::nullopt;
    } catch (const nlohmann::json::exception&) {
    }
    return launcher + " answered VERSION with something other than a CNI version object: " + run.output.substr(0, 300);
}

}  // namespace ef::install
