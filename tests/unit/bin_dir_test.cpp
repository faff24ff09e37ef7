// The bin dir must be the runtime's: which plugins a chain needs, which are
// missing from a dir, and which known dir holds them.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "install/bin_dir.h"

using namespace ef::install;
namespace fs = std::filesystem;

namespace {

struct TempDir {
    fs::path path;
    TempDir() {
        char tmpl[] = "/tmp/ef-bindir-test.XXXXXX";
        path = mkdtemp(tmpl);
    }
    ~TempDir() { fs::remove_all(path); }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    TempDir(TempDir&&) = delete;
    TempDir& operator=(TempDir&&) = delete;
    void add(const std::string& name, mode_t mode) const {
        std::ofstream(path / name) << "#!/bin/sh\n";
        ::chmod((path / name).c_str(), mode);
    }
};

Network network(const char* list) { return {"10-test.conflist", Json::parse(list), false}; }

}  // namespace

TEST_CASE("bin dir: the chain's plugin types, egress-fence left out, each once, in order") {
    auto n = network(R"({"plugins": [{"type": "calico"}, {"type": "portmap"}, {"type": "calico"},
                                      {"type": "egress-fence"}, {"notype": 1}, {"type": 7}]})");
    CHECK(chain_plugin_types(n.list) == std::vector<std::string>{"calico", "portmap"});
}

TEST_CASE("bin dir: a plugin counts only as an executable regular file; a '/' in a type is never found") {
    TempDir d;
    d.add("calico", 0755);
    d.add("portmap", 0644);  // not executable
    fs::create_directory(d.path / "bandwidth");
    fs::create_symlink(d.path / "calico", d.path / "calico-ipam");
    auto n = network(R"({"plugins": [{"type": "calico"}, {"type": "portmap"}, {"type": "bandwidth"},
                                      {"type": "calico-ipam"}, {"type": "../calico"}]})");
    CHECK(missing_plugins(n.list, d.path) == std::vector<std::string>{"portmap", "bandwidth", "../calico"});
}

TEST_CASE("bin dir: no problem when every plugin is there; else the message names the file and the plugins") {
    TempDir d;
    d.add("flannel", 0755);
    auto ok = network(R"({"plugins": [{"type": "flannel"}, {"type": "egress-fence"}]})");
    CHECK_FALSE(bin_dir_problem(ok, d.path).has_value());
    auto bad = network(R"({"plugins": [{"type": "flannel"}, {"type": "portmap"}]})");
    auto p = bin_dir_problem(bad, d.path);
    REQUIRE(p.has_value());
    CHECK(p->msg.find("10-test.conflist (portmap)") != std::string::npos);
    CHECK(p->details.find("/var/lib/rancher/k3s/data/cni") != std::string::npos);
    CHECK(p->details.find("--skip-bin-dir-check") != std::string::npos);
}

TEST_CASE("bin dir: the likely dir is the first candidate holding every missing plugin") {
    TempDir a, b;
    a.add("flannel", 0755);
    b.add("flannel", 0755);
    b.add("portmap", 0755);
    CHECK(dir_holding({"flannel", "portmap"}, {a.path, b.path}) == b.path.string());
    CHECK(dir_holding({"flannel"}, {a.path, b.path}) == a.path.string());
    CHECK(dir_holding({"cilium-cni"}, {a.path, b.path}).empty());
    CHECK(dir_holding({}, {a.path}).empty());
}
