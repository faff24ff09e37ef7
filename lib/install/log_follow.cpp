#include "install/log_follow.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>

namespace ef::install {

LogFollower::LogFollower(std::string path, bool from_start, size_t max_line)
    : path_(std::move(path)), from_start_(from_start), max_line_(max_line) {}

LogFollower::~LogFollower() {
    if (fd_ >= 0) ::close(fd_);
}

void LogFollower::reopen(bool at_end) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    partial_.clear();
    cutting_ = false;
    offset_ = 0;
    struct stat st {};
    if (fd_ < 0 || ::fstat(fd_, &st) != 0) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
        return;
    }
    ino_ = st.st_ino;
    dev_ = st.st_dev;
    if (at_end) offset_ = st.st_size;
}

void LogFollower::drain(const std::function<void(const std::string&)>& line) {
    std::array<char, 65536> buf{};
    for (;;) {
        ssize_t n = ::pread(fd_, buf.data(), buf.size(), offset_);
        if (n <= 0) return;
        offset_ += n;
        for (ssize_t i = 0; i < n; ++i) {
            char c = buf[static_cast<size_t>(i)];
            if (c == '\n') {
                if (!cutting_) line(partial_);
                partial_.clear();
                cutting_ = false;
            } else if (!cutting_) {
                partial_.push_back(c);
                if (partial_.size() >= max_line_) {
                    line(partial_ + " [cut]");
                    partial_.clear();
                    cutting_ = true;
                }
            }
        }
    }
}

void LogFollower::poll(const std::function<void(const std::string&)>& line) {
    if (fd_ < 0) {
        // The first time the file is found: from its end unless told otherwise;
        // a file created after the first poll is read whole (it is all new).
        reopen(!from_start_);
        from_start_ = true;
        if (fd_ < 0) return;
    }
    struct stat named {};
    bool replaced = ::stat(path_.c_str(), &named) == 0 && (named.st_ino != ino_ || named.st_dev != dev_);
    struct stat own {};
    if (::fstat(fd_, &own) == 0 && own.st_size < offset_) {
        // Truncated in place (copytruncate): start over.
        offset_ = 0;
        partial_.clear();
        cutting_ = false;
    }
    drain(line);
    if (replaced) {
        // Rotated: what the old file got before the rename is read above;
        // the new file is all new.
        reopen(false);
        if (fd_ >= 0) drain(line);
    }
}

}  // namespace ef::install
