#include "cni/invocation_log.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <nlohmann/json.hpp>

namespace ef::cni {
namespace {

std::string now_rfc3339() {
    auto now = std::chrono::system_clock::now();
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count();
    auto secs = static_cast<time_t>(us / 1000000);
    struct tm tm {};
    gmtime_r(&secs, &tm);
    char buf[64];
    size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    if (n == 0) return {};
    // Cannot truncate: 64 bytes hold the 19 of the date and time and the 9 of the fraction.
    (void)snprintf(buf + n, sizeof buf - n, ".%06lldZ", static_cast<long long>(us % 1000000));
    return buf;
}

struct Fd {
    int fd;
    explicit Fd(int fd) : fd(fd) {}
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd() {
        if (fd >= 0) close(fd);
    }
};

}  // namespace

bool append_record(const std::string& path, const InvocationRecord& r, uint64_t max_bytes) {
    if (path.empty()) return false;
    nlohmann::json j = {{"time", now_rfc3339()},         {"verb", r.verb},
                        {"containerId", r.container_id}, {"pod", r.pod},
                        {"profile", r.profile},          {"outcome", r.outcome},
                        {"durationUs", r.duration_us}};
    if (r.error_code) {
        j["errorCode"] = r.error_code;
        j["error"] = r.error;
    }
    if (!r.warnings.empty()) j["warnings"] = r.warnings;
    std::string line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";

    size_t slash = path.rfind('/');
    if (slash != std::string::npos && slash > 0) mkdir(path.substr(0, slash).c_str(), 0755);

    Fd f{open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640)};
    if (f.fd < 0 || flock(f.fd, LOCK_EX) != 0) return false;
    struct stat st {};
    // Another process may have rotated between our open and our lock: if the
    // name no longer points at our inode, write to the new file instead.
    struct stat named {};
    if (stat(path.c_str(), &named) != 0 || fstat(f.fd, &st) != 0 || named.st_ino != st.st_ino) {
        return append_record(path, r, max_bytes);
    }
    if (static_cast<uint64_t>(st.st_size) + line.size() > max_bytes) {
        // A failed rotation still appends: an oversized log is better than a lost record.
        (void)rename(path.c_str(), (path + ".1").c_str());
        Fd fresh{open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640)};
        if (fresh.fd < 0) return false;
        return write(fresh.fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
    }
    return write(f.fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
}

}  // namespace ef::cni
