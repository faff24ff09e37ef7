// The file the container runtime executes as the `egress-fence` plugin (and,
// in the image, as `egress-fence-ctl`). Linked fully static, so it runs on any
// host; it starts `<name>.real` from the bundle dir next to it through the
// bundled loader and libraries, so the host's libc is never used.
//
//   <dir>/<name>                                  this launcher
//   <dir>/egress-fence.d -> egress-fence.d-<digest>   (or a plain dir)
//   <dir>/egress-fence.d-<digest>/{ld-linux-x86-64.so.2, <name>.real, lib*.so*}
#include <limits.h>  // NOLINT(modernize-deprecated-headers): POSIX PATH_MAX
#include <stdlib.h>  // NOLINT(modernize-deprecated-headers): POSIX realpath
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

// The launcher's own path. /proc may be absent (an empty chroot), then argv[0],
// which runtimes set to the full path they executed.
std::string self_path(const char* argv0) {
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n > 0) {
        // An upgrade may have replaced this file since it was executed.
        std::string path(buf, size_t(n));
        const std::string deleted = " (deleted)";
        if (path.size() > deleted.size() && path.ends_with(deleted)) path.resize(path.size() - deleted.size());
        return path;
    }
    if (argv0 && strchr(argv0, '/') && realpath(argv0, buf)) return buf;
    return argv0 ? argv0 : "";
}

// Resolves the bundle symlink once, so the loader, the libraries and the
// program all come from one version even if an upgrade swaps the link now.
std::string bundle_dir(const std::string& dir) {
    std::string link = dir + "/egress-fence.d";
    char buf[PATH_MAX];
    ssize_t n = readlink(link.c_str(), buf, sizeof buf - 1);
    if (n <= 0) return link;
    std::string target(buf, size_t(n));
    return target[0] == '/' ? target : dir + "/" + target;
}

int fail(const std::string& what) {
    // A CNI error object, so the runtime shows the reason in the pod's events.
    printf(
        "{\"cniVersion\":\"0.3.1\",\"code\":5,\"msg\":\"egress-fence launcher: %s\","
        "\"details\":\"reinstall the plugin (restart the egress-fence DaemonSet pod on this node)\"}\n",
        what.c_str());
    return 1;
}

}  // namespace

int main(int argc, char** argv) {
    std::string self = self_path(argv[0]);
    auto slash = self.rfind('/');
    if (slash == std::string::npos) return fail("cannot find my own path");
    std::string dir = self.substr(0, slash);
    std::string name = self.substr(slash + 1);
    std::string bundle = bundle_dir(dir.empty() ? "/" : dir);
    std::string loader = bundle + "/ld-linux-x86-64.so.2";
    std::string program = bundle + "/" + name + ".real";

    std::vector<char*> args;
    args.push_back(loader.data());
    // Only the bundle is searched for libraries; preloads from the caller's
    // environment would pull host libraries into the process.
    std::string opt_path = "--library-path", opt_argv0 = "--argv0";
    args.push_back(opt_path.data());
    args.push_back(bundle.data());
    args.push_back(opt_argv0.data());
    args.push_back(argv[0]);
    args.push_back(program.data());
    for (int i = 1; i < argc; ++i) args.push_back(argv[i]);
    args.push_back(nullptr);
    unsetenv("LD_PRELOAD");
    unsetenv("LD_LIBRARY_PATH");
    unsetenv("LD_AUDIT");
    execv(loader.c_str(), args.data());
    return fail("cannot execute " + loader + ": " + strerror(errno));
}
