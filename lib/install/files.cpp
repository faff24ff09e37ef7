#include "install/files.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "cni/error.h"

namespace ef::install {

Fd& Fd::operator=(Fd&& other) noexcept {
    if (this != &other) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = other.release();
    }
    return *this;
}

Fd::~Fd() {
    if (fd_ >= 0) ::close(fd_);
}

int Fd::release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
}

void throw_errno(const std::string& what, const std::string& path) {
    int err = errno;
    throw cni::Error(cni::kIoFailure, what + " " + path + ": " + std::strerror(err),
                     "check that the path exists, is on a writable filesystem and is mounted into the container");
}

std::string dir_of(const std::string& path) {
    auto slash = path.rfind('/');
    if (slash == std::string::npos) return ".";
    return slash == 0 ? "/" : path.substr(0, slash);
}

std::string base_of(const std::string& path) {
    auto slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string read_file(const std::string& path) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) throw_errno("cannot open", path);
    std::string out;
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw_errno("cannot read", path);
        if (n == 0) break;
        out.append(buf, size_t(n));
    }
    return out;
}

std::vector<ConfFile> read_conf_dir(const std::string& dir) {
    std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
    if (!d) {
        if (errno == ENOENT) return {};
        throw_errno("cannot list", dir);
    }
    std::vector<ConfFile> files;
    const std::string prefix = dir + "/";
    while (const dirent* e = ::readdir(d.get())) {
        std::string name = e->d_name;
        if (!is_conf_name(name)) continue;
        // libcni lists with lstat: directories are skipped, symlinks kept.
        struct stat st {};
        if (::fstatat(dirfd(d.get()), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) continue;
        ConfFile f{name, {}};
        try {
            f.content = read_file(prefix + name);
        } catch (const cni::Error&) {
        }
        files.push_back(std::move(f));
    }
    std::sort(files.begin(), files.end(), [](const ConfFile& a, const ConfFile& b) { return a.name < b.name; });
    return files;
}

void sync_dir(const std::string& dir) {
    Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd.get() < 0) throw_errno("cannot open directory", dir);
    if (::fsync(fd.get()) != 0) throw_errno("cannot fsync directory", dir);
}

namespace {

void write_all(int fd, std::string_view bytes, const std::string& path) {
    while (!bytes.empty()) {
        ssize_t n = ::write(fd, bytes.data(), bytes.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw_errno("cannot write", path);
        bytes.remove_prefix(size_t(n));
    }
}

// Unlinks a temp file unless the rename into place happened.
struct TempFile {
    std::string path;
    bool committed = false;
    explicit TempFile(std::string p) : path(std::move(p)) {}
    TempFile(const TempFile&) = delete;
    TempFile& operator=(const TempFile&) = delete;
    ~TempFile() {
        if (!committed) ::unlink(path.c_str());
    }
};

}  // namespace

bool replace_file(const std::string& path, std::string_view bytes, mode_t mode) {
    struct stat st {};
    bool exists = ::stat(path.c_str(), &st) == 0;
    if (exists) {
        mode = st.st_mode & 07777;
        try {
            if (read_file(path) == bytes) return false;
        } catch (const cni::Error&) {
            // unreadable: replace it
        }
    }
    std::string tmpl = dir_of(path) + "/.egress-fence.tmp-XXXXXX";
    Fd fd(::mkostemp(tmpl.data(), O_CLOEXEC));
    if (fd.get() < 0) throw_errno("cannot create a temp file next to", path);
    TempFile tmp{tmpl};
    write_all(fd.get(), bytes, tmp.path);
    if (exists && (st.st_uid != ::geteuid() || st.st_gid != ::getegid()) &&
        ::fchown(fd.get(), st.st_uid, st.st_gid) != 0)
        throw_errno("cannot keep the owner of", path);
    if (::fchmod(fd.get(), mode) != 0) throw_errno("cannot set the mode of", tmp.path);
    if (::fsync(fd.get()) != 0) throw_errno("cannot fsync", tmp.path);
    // Closed before the rename: an executable still open for writing cannot be
    // executed (ETXTBSY), and after the rename the runtime may exec it at once.
    if (::close(fd.release()) != 0) throw_errno("cannot close", tmp.path);
    // rename replaces the directory entry: a running copy of the old file keeps
    // its inode, so no reader ever sees a partial file and no ETXTBSY is possible.
    if (::rename(tmp.path.c_str(), path.c_str()) != 0) throw_errno("cannot rename a temp file onto", path);
    tmp.committed = true;
    sync_dir(dir_of(path));
    return true;
}

mode_t file_mode(const std::string& path, mode_t fallback) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 ? mode_t(st.st_mode & 07777) : fallback;
}

bool remove_file(const std::string& path) {
    if (::unlink(path.c_str()) != 0) {
        if (errno == ENOENT) return false;
        throw_errno("cannot remove", path);
    }
    sync_dir(dir_of(path));
    return true;
}

}  // namespace ef::install
