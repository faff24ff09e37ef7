// The installer's file I/O: read a conf dir, replace a file atomically and
// durably, remove a file durably. Every failure is a cni::Error{kIoFailure}
// naming the path and the errno.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "install/conf_dir.h"

namespace ef::install {

// An owned file descriptor; closed on destruction.
class Fd {
  public:
    explicit Fd(int fd = -1) : fd_(fd) {}
    Fd(Fd&& other) noexcept : fd_(other.release()) {}
    Fd& operator=(Fd&& other) noexcept;
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd();
    int get() const { return fd_; }
    int release();

  private:
    int fd_;
};

[[noreturn]] void throw_errno(const std::string& what, const std::string& path);

// The files of `dir` the runtime would consider (conf-named, not directories),
// with their bytes; an unreadable one comes with empty content, which does not
// load, as for libcni. A missing dir gives an empty list.
std::vector<ConfFile> read_conf_dir(const std::string& dir);

std::string read_file(const std::string& path);

// Makes `path` hold `bytes`: a temp file in the same dir, fsync, rename over
// `path`, fsync the dir. Keeps the mode and owner of an existing file, else
// uses `mode`. An existing file with the same bytes is left alone (returns
// false), so a repeated install writes nothing.
bool replace_file(const std::string& path, std::string_view bytes, mode_t mode);

// The permission bits of `path`, or `fallback` when it cannot be stat'ed.
mode_t file_mode(const std::string& path, mode_t fallback);

// Removes `path` (no error if absent) and fsyncs its dir. Returns whether it existed.
bool remove_file(const std::string& path);

// fsync of a directory, so a rename or unlink in it survives a crash.
void sync_dir(const std::string& dir);

std::string dir_of(const std::string& path);
std::string base_of(const std::string& path);

}  // namespace ef::install
