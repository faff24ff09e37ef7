// Following the node's plugin log (the plugin's logFile) for the DaemonSet's
// main container, so `kubectl logs` shows every ADD/DEL/CHECK outcome on the
// node. Read-only and off the enforcement path: if it stops, nothing about
// fencing changes.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <functional>
#include <string>

namespace ef::install {

// Reads what was appended to one file since the last poll, across the
// plugin's rotation (the file renamed to `path.1` and a new one created) and a
// truncation (logrotate's copytruncate). Memory is bounded by `max_line`: a
// longer line is passed on cut at that length with " [cut]" appended, and its
// rest dropped.
class LogFollower {
  public:
    // `from_start`: the lines already in the file count as new (else only
    // those appended after the first poll that finds the file).
    explicit LogFollower(std::string path, bool from_start = false, size_t max_line = size_t{64} * 1024);
    ~LogFollower();
    LogFollower(const LogFollower&) = delete;
    LogFollower& operator=(const LogFollower&) = delete;

    // Calls `line` (without its '\n') for every complete line appended since
    // the last poll, in file order; the lines a rotated file got after the
    // last poll come before the new file's. A missing file is no error: it is
    // looked for again at the next poll. Never throws for I/O problems.
    void poll(const std::function<void(const std::string&)>& line);

  private:
    void drain(const std::function<void(const std::string&)>& line);
    void reopen(bool at_end);

    std::string path_;
    bool from_start_;
    size_t max_line_;
    int fd_ = -1;
    ino_t ino_ = 0;
    dev_t dev_ = 0;
    off_t offset_ = 0;
    std::string partial_;
    bool cutting_ = false;  // inside a line already passed on cut
};

}  // namespace ef::install
