#include "netns/netns.h"

#include <cerrno>
#include <cstring>
#include <utility>

#include <fcntl.h>
#include <linux/magic.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "cni/error.h"

namespace ef::netns {
namespace {

// The calling thread's netns (another thread may sit elsewhere).
constexpr const char* kSelfNetns = "/proc/thread-self/ns/net";

[[noreturn]] void unusable(const std::string& path, const std::string& why) {
    throw cni::Error(cni::kNetnsUnusable, "CNI_NETNS " + path + ": " + why);
}

class Fd {
  public:
    explicit Fd(int fd) : fd_(fd) {}
    ~Fd() {
        if (fd_ >= 0) close(fd_);
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    int get() const { return fd_; }
    int release() { return std::exchange(fd_, -1); }

  private:
    int fd_;
};

bool on_nsfs(int fd) {
    struct statfs fs {};
    return fstatfs(fd, &fs) == 0 && fs.f_type == static_cast<decltype(fs.f_type)>(NSFS_MAGIC);
}

// The namespace kind of an nsfs file (CLONE_NEW*), or -1 if the kernel
// cannot tell (before 4.11).
int ioctl_ns_type(int fd) { return ioctl(fd, NS_GET_NSTYPE); }

}  // namespace

ScopedNetns::ScopedNetns(const std::string& path) {
    Fd target(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (target.get() < 0) {
        if (errno == ENOENT) unusable(path, "no such file");
        unusable(path, std::string("cannot open: ") + std::strerror(errno));
    }
    if (!on_nsfs(target.get())) unusable(path, "is not a network namespace");
    if (int type = ioctl_ns_type(target.get()); type >= 0 && type != CLONE_NEWNET)
        unusable(path, "is not a network namespace");
    Fd original(open(kSelfNetns, O_RDONLY | O_CLOEXEC));
    if (original.get() < 0) unusable(path, std::string("cannot open the current netns: ") + std::strerror(errno));
    // setns checks the namespace type: EINVAL for a mount/pid/... ns file.
    if (setns(target.get(), CLONE_NEWNET) < 0) {
        if (errno == EINVAL) unusable(path, "is not a network namespace");
        unusable(path, std::string("setns failed: ") + std::strerror(errno));
    }
    original_fd_ = original.release();
}

ScopedNetns::~ScopedNetns() {
    // Nothing sensible to do if returning fails; the thread stays put, and
    // the plugin exits right after anyway.
    (void)setns(original_fd_, CLONE_NEWNET);
    close(original_fd_);
}

bool is_netns(const std::string& path) {
    Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0 || !on_nsfs(fd.get())) return false;
    // nsfs also holds mnt, pid, ... namespaces: ask which kind it is.
    int type = ioctl_ns_type(fd.get());
    return type < 0 || type == CLONE_NEWNET;
}

bool owned_by_own_userns(const std::string& path) {
    Fd netns(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (netns.get() < 0) unusable(path, std::string("cannot open: ") + std::strerror(errno));
    Fd owner(ioctl(netns.get(), NS_GET_USERNS));
    if (owner.get() < 0)
        unusable(path,
                 std::string("cannot tell which user namespace owns it (NS_GET_USERNS): ") + std::strerror(errno));
    struct stat a {
    }, b{};
    if (fstat(owner.get(), &a) < 0 || stat("/proc/self/ns/user", &b) < 0)
        unusable(path, std::string("cannot compare user namespaces: ") + std::strerror(errno));
    return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

bool is_current_netns(const std::string& path) {
    struct stat a {
    }, b{};
    if (stat(path.c_str(), &a) < 0 || stat(kSelfNetns, &b) < 0) return false;
    return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

}  // namespace ef::netns
