// Following the plugin's log: new lines only, whole lines, rotation,
// truncation, and a bound on memory for a line without end.
#include <doctest/doctest.h>

#include <unistd.h>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "install/log_follow.h"

using ef::install::LogFollower;

namespace {

struct Log {
    std::string path;
    Log() {
        char tmpl[] = "/tmp/ef-follow-test.XXXXXX";
        path = std::string(mkdtemp(tmpl)) + "/ef.log";
    }
    ~Log() {
        (void)std::remove(path.c_str());
        (void)std::remove((path + ".1").c_str());
        ::rmdir(path.substr(0, path.rfind('/')).c_str());
    }
    Log(const Log&) = delete;
    Log& operator=(const Log&) = delete;
    Log(Log&&) = delete;
    Log& operator=(Log&&) = delete;
    void append(const std::string& text) const { std::ofstream(path, std::ios::app) << text; }
};

std::vector<std::string> poll(LogFollower& f) {
    std::vector<std::string> lines;
    f.poll([&](const std::string& l) { lines.push_back(l); });
    return lines;
}

using Lines = std::vector<std::string>;

}  // namespace

TEST_CASE("follow: only lines appended after the first poll, each whole and once") {
    Log log;
    log.append("old\n");
    LogFollower f(log.path);
    CHECK(poll(f).empty());
    log.append("a\nb");
    CHECK(poll(f) == Lines{"a"});
    log.append("c\n");
    CHECK(poll(f) == Lines{"bc"});
    CHECK(poll(f).empty());
}

TEST_CASE("follow: a file that appears later is read whole; rotation keeps the old file's unread lines first") {
    Log log;
    LogFollower f(log.path);
    CHECK(poll(f).empty());  // no file yet
    log.append("1\n");
    CHECK(poll(f) == Lines{"1"});
    log.append("2\n");
    REQUIRE(std::rename(log.path.c_str(), (log.path + ".1").c_str()) == 0);
    log.append("3\n");
    CHECK(poll(f) == Lines{"2", "3"});
}

TEST_CASE("follow: a truncated file is read again from its start") {
    Log log;
    LogFollower f(log.path);
    CHECK(poll(f).empty());
    log.append("a long first line\n");
    CHECK(poll(f).size() == 1);
    std::ofstream(log.path, std::ios::trunc) << "x\n";
    CHECK(poll(f) == Lines{"x"});
}

TEST_CASE("follow: a line longer than the bound is passed on cut, its rest dropped, the next line intact") {
    Log log;
    LogFollower f(log.path, true, 8);
    log.append(std::string(100, 'z') + "\nnext\n");
    CHECK(poll(f) == Lines{"zzzzzzzz [cut]", "next"});
}
