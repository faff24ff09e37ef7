// lib/install: conf dir discovery as libcni/go-cni does it, conflist editing
// for owned and chained mode, verify, and the atomic file and bundle I/O.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "cni/error.h"
#include "install/bundle.h"
#include "install/conf_dir.h"
#include "install/conflist.h"
#include "install/files.h"
#include "install/sha256.h"

using namespace ef::install;
namespace fs = std::filesystem;

namespace {

const char* kCalico = R"({
  "name": "k8s-pod-network",
  "cniVersion": "0.3.1",
  "plugins": [
    {"type": "calico", "ipam": {"type": "calico-ipam"}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
})";

const char* kBridgeConf = R"({"cniVersion": "1.0.0", "name": "mynet", "type": "bridge", "bridge": "cni0"})";

Json entry() {
    return Json::parse(R"({
      "type": "egress-fence",
      "capabilities": {"io.kubernetes.cri.pod-annotations": true},
      "selectors": [{"namespaces": ["sandboxes"], "profile": "proxy-only"}],
      "profiles": {"proxy-only": {"exemptUids": [1337],
                   "allow": [{"cidr": "10.96.0.10/32", "protocol": "udp", "ports": [53]}]}}
    })");
}

std::string chosen_file(const std::vector<ConfFile>& files, bool include_owned = false) {
    auto d = discover(files, include_owned);
    return d.chosen ? d.chosen->file : "";
}

// A conf dir after an owned install over `files`.
std::vector<ConfFile> with_owned(std::vector<ConfFile> files) {
    auto primary = discover(files, false).chosen.value();
    files.push_back({std::string(kOwnedFile), render_owned(primary, entry())});
    return files;
}

struct TempDir {
    fs::path path;
    TempDir() {
        std::string tmpl = (fs::temp_directory_path() / "ef-install-test-XXXXXX").string();
        path = ::mkdtemp(tmpl.data());
    }
    ~TempDir() { fs::remove_all(path); }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    std::string str(const std::string& rel = "") const { return rel.empty() ? path.string() : (path / rel).string(); }
};

void write(const std::string& path, const std::string& text, mode_t mode = 0644) {
    std::ofstream(path, std::ios::binary) << text;
    ::chmod(path.c_str(), mode);
}

ino_t inode(const std::string& path) {
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    return st.st_ino;
}

}  // namespace

TEST_CASE("sha256 matches the FIPS 180-4 test vectors") {
    CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
          "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    CHECK(sha256_hex(std::string(1000, 'a')) == "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3");
}

TEST_CASE("discovery picks the lexically first loadable .conflist, .conf or .json") {
    std::vector<ConfFile> files = {
        {"20-other.conflist", kCalico},      {"10-calico.conflist", kCalico}, {"README", "not a config"},
        {"05-calico.conflist.bak", kCalico}, {"15-bridge.conf", kBridgeConf},
    };
    CHECK(chosen_file(files) == "10-calico.conflist");

    // Byte-wise order, as Go's sort.Strings: a .conf sorts before the .conflist of the same stem.
    CHECK(chosen_file({{"10-a.conflist", kCalico}, {"10-a.conf", kBridgeConf}}) == "10-a.conf");
    CHECK(chosen_file({{"a.conflist", kCalico}, {"B.conflist", kCalico}}) == "B.conflist");
    CHECK(chosen_file({{"10-x.json", kBridgeConf}, {"11-y.conflist", kCalico}}) == "10-x.json");
    CHECK(chosen_file({{"notes.txt", kCalico}, {"config.yaml", kCalico}}).empty());
}

TEST_CASE("discovery skips what the runtime cannot load") {
    auto skipped_reason = [](const std::string& name, const std::string& content) {
        auto d = discover({{name, content}, {"99-calico.conflist", kCalico}}, false);
        REQUIRE(d.chosen);
        CHECK(d.chosen->file == "99-calico.conflist");
        REQUIRE(d.skipped.size() == 1);
        return d.skipped[0].reason;
    };
    CHECK(skipped_reason("00-broken.conflist", R"({"name": "x", "plugins": [)").find("invalid JSON") == 0);
    CHECK(skipped_reason("00-empty.conflist", R"({"name": "x", "plugins": []})") == "no plugins in list");
    CHECK(skipped_reason("00-noplugins.conflist", R"({"name": "x"})") == "no 'plugins' key");
    CHECK(skipped_reason("00-noname.conflist", R"({"plugins": [{"type": "a"}]})") == "no name");
    CHECK(skipped_reason("00-notype.conflist", R"({"name": "x", "plugins": [{"a": 1}]})") ==
          "plugin 0: missing 'type'");
    CHECK(skipped_reason("00-notype.conf", R"({"name": "x", "cniVersion": "0.3.1"})") == "missing 'type'");
    // A conflist saved as .conf has no top-level type: go-cni rejects it.
    CHECK(skipped_reason("00-list.conf", kCalico) == "missing 'type'");
    CHECK(skipped_reason("00-array.json", "[1, 2]") == "not a JSON object");
    CHECK(skipped_reason("00-typenum.conf", R"({"type": 5})") == "'type' is not a string");
    CHECK(skipped_reason("00-bom.conf", std::string("\xEF\xBB\xBF") + kBridgeConf) == "starts with a byte-order mark");
}

TEST_CASE("discovery passes over egress-fence's own file only when asked") {
    auto files = with_owned({{"10-calico.conflist", kCalico}});
    CHECK(chosen_file(files, false) == "10-calico.conflist");
    CHECK(chosen_file(files, true) == kOwnedFile);
}

TEST_CASE("a .conf is wrapped into a one-plugin list keeping name and cniVersion") {
    std::string why;
    auto net = load_network({"10-bridge.conf", kBridgeConf}, why);
    REQUIRE(net);
    CHECK(net->from_single_conf);
    CHECK(net->list["name"] == "mynet");
    CHECK(net->list["cniVersion"] == "1.0.0");
    REQUIRE(net->list["plugins"].size() == 1);
    CHECK(net->list["plugins"][0] == Json::parse(kBridgeConf));
}

TEST_CASE("owned mode copies the primary chain and appends egress-fence last") {
    auto primary = discover({{"10-calico.conflist", kCalico}}, false).chosen.value();
    auto text = render_owned(primary, entry());
    auto list = Json::parse(text);
    CHECK(list["name"] == "k8s-pod-network");
    CHECK(list["cniVersion"] == "0.3.1");
    REQUIRE(list["plugins"].size() == 3);
    CHECK(list["plugins"][0]["type"] == "calico");
    CHECK(list["plugins"][2]["type"] == "egress-fence");
    auto rec = list[std::string(kSourceKey)];
    CHECK(rec["mode"] == "owned");
    CHECK(rec["file"] == "10-calico.conflist");
    CHECK(rec["digest"] == primary_digest(Json::parse(kCalico)));
    // The written file loads as a conflist (libcni ignores the record key).
    std::string why;
    CHECK(load_network({std::string(kOwnedFile), text}, why));
    // Same input, same bytes: a repeated install writes nothing.
    CHECK(render_owned(primary, entry()) == text);
}

TEST_CASE("owned mode over a .conf primary wraps it") {
    auto primary = discover({{"00-multus.conf", R"({"cniVersion": "0.3.1", "name": "multus-cni-network",
                                                   "type": "multus", "delegates": [{"type": "ovn"}]})"}},
                            false)
                       .chosen.value();
    auto list = Json::parse(render_owned(primary, entry()));
    CHECK(list["name"] == "multus-cni-network");
    CHECK(list["cniVersion"] == "0.3.1");
    REQUIRE(list["plugins"].size() == 2);
    CHECK(list["plugins"][0]["type"] == "multus");
    CHECK(list["plugins"][1]["type"] == "egress-fence");
}

TEST_CASE("owned mode replaces an old egress-fence entry instead of adding a second") {
    auto chained = Json::parse(kCalico);
    auto old = entry();
    old["logLevel"] = "debug";
    chained["plugins"].push_back(old);
    auto primary = discover({{"10-calico.conflist", chained.dump()}}, false).chosen.value();
    auto list = Json::parse(render_owned(primary, entry()));
    REQUIRE(list["plugins"].size() == 3);
    CHECK(list["plugins"][2] == installed_entry(entry()));
    // The digest is of the primary's own part, so the stale entry does not count.
    CHECK(list[std::string(kSourceKey)]["digest"] == primary_digest(Json::parse(kCalico)));
}

TEST_CASE("the digest ignores formatting and key order but not values") {
    auto a = Json::parse(kCalico);
    auto b = Json::parse(R"({"cniVersion":"0.3.1","plugins":[{"ipam":{"type":"calico-ipam"},"type":"calico"},
                             {"capabilities":{"portMappings":true},"type":"portmap"}],"name":"k8s-pod-network"})");
    CHECK(primary_digest(a) == primary_digest(b));
    b["plugins"][0]["mtu"] = 1400;
    CHECK(primary_digest(a) != primary_digest(b));
}

TEST_CASE("chained mode inserts the entry last, is idempotent and uninstall restores the bytes") {
    ConfFile calico{"10-calico.conflist", kCalico};
    auto once = render_chained(calico, entry());
    auto list = Json::parse(once);
    REQUIRE(list["plugins"].size() == 3);
    CHECK(list["plugins"][2]["type"] == "egress-fence");
    CHECK(list["plugins"][2].contains("cniVersion") == false);
    // Key order of the primary is kept.
    CHECK(list.begin().key() == "name");
    CHECK(render_chained({calico.name, once}, entry()) == once);

    auto changed = entry();
    changed["logLevel"] = "debug";
    auto updated = render_chained({calico.name, once}, changed);
    CHECK(Json::parse(updated)["plugins"].size() == 3);
    CHECK(Json::parse(updated)["plugins"][2]["logLevel"] == "debug");

    CHECK(render_unchained({calico.name, once}) == std::string(kCalico));
    CHECK(render_unchained({calico.name, updated}) == std::string(kCalico));
    CHECK_FALSE(render_unchained(calico));
}

TEST_CASE("chained mode after the primary rewrote its file records the new bytes") {
    ConfFile calico{"10-calico.conflist", kCalico};
    auto once = render_chained(calico, entry());
    // Calico restarts with a new MTU and writes its file without our entry.
    auto rewritten = Json::parse(kCalico);
    rewritten["plugins"][0]["mtu"] = 1400;
    std::string rewritten_text = rewritten.dump(4);
    CHECK_FALSE(render_unchained({calico.name, rewritten_text}));
    auto again = render_chained({calico.name, rewritten_text}, entry());
    CHECK(render_unchained({calico.name, again}) == rewritten_text);
    (void)once;
}

TEST_CASE("uninstall of an entry whose primary changed since install drops only the entry") {
    auto once = Json::parse(render_chained({"10-calico.conflist", kCalico}, entry()));
    once["plugins"][0]["mtu"] = 1400;  // someone edited the file, keeping our entry
    auto restored = Json::parse(render_unchained({"10-calico.conflist", once.dump()}).value());
    CHECK(restored["plugins"].size() == 2);
    CHECK(restored["plugins"][0]["mtu"] == 1400);
    CHECK_FALSE(restored.contains(std::string(kSourceKey)));
}

TEST_CASE("chained mode refuses a single-plugin .conf") {
    CHECK_THROWS_WITH_AS(render_chained({"10-bridge.conf", kBridgeConf}, entry()),
                         doctest::Contains("a single-plugin .conf file holds no chain"), ef::cni::Error);
}

TEST_CASE("a primary whose cniVersion egress-fence does not speak is refused") {
    std::string why;
    auto old = load_network({"10-old.conflist", R"({"name": "n", "cniVersion": "0.2.0", "plugins": [{"type": "a"}]})"},
                            why);
    REQUIRE(old);
    CHECK_THROWS_WITH_AS(check_chainable(*old), doctest::Contains(R"(declares cniVersion "0.2.0")"), ef::cni::Error);
    auto ok = load_network({"10-calico.conflist", kCalico}, why);
    CHECK_NOTHROW(check_chainable(*ok));
}

TEST_CASE("verify: an owned copy that matches its source fences") {
    auto files = with_owned({{"10-calico.conflist", kCalico}, {"00-broken.conflist", "{"}});
    auto v = verify(files, entry());
    CHECK_MESSAGE(v.fenced, v.reason);
    CHECK(v.file == kOwnedFile);
}

TEST_CASE("verify fails when the primary rewrote its file after an owned install") {
    auto files = with_owned({{"10-calico.conflist", kCalico}});
    auto rewritten = Json::parse(kCalico);
    rewritten["plugins"][0]["mtu"] = 1400;
    files[0].content = rewritten.dump();
    auto v = verify(files, std::nullopt);
    CHECK_FALSE(v.fenced);
    CHECK(v.reason.find("10-calico.conflist changed") != std::string::npos);
}

TEST_CASE("verify fails when another primary now sorts first") {
    auto files = with_owned({{"10-calico.conflist", kCalico}});
    files.push_back(
        {"05-cilium.conflist", R"({"name": "cilium", "cniVersion": "0.3.1", "plugins": [{"type": "cilium-cni"}]})"});
    auto v = verify(files, std::nullopt);
    CHECK_FALSE(v.fenced);
    CHECK(v.reason.find("now 05-cilium.conflist") != std::string::npos);
}

TEST_CASE("verify fails when the owned file was renamed away (Cilium exclusive mode)") {
    auto files = with_owned({{"05-cilium.conflist", R"({"name": "cilium", "cniVersion": "0.3.1",
                                                       "plugins": [{"type": "cilium-cni"}]})"}});
    files.back().name = std::string(kOwnedFile) + ".cilium_bak";
    auto v = verify(files, std::nullopt);
    CHECK_FALSE(v.fenced);
    CHECK(v.file == "05-cilium.conflist");
    CHECK(v.reason.find("is missing") != std::string::npos);
}

TEST_CASE("verify fails when a file sorting before ours wins") {
    auto files = with_owned({{"10-calico.conflist", kCalico}});
    files.push_back({"00-aaa.conflist", kCalico});
    auto v = verify(files, std::nullopt);
    CHECK_FALSE(v.fenced);
    CHECK(v.reason.find("exists but does not load first") != std::string::npos);
}

TEST_CASE("verify of a chained file") {
    auto chained = render_chained({"10-calico.conflist", kCalico}, entry());
    CHECK(verify({{"10-calico.conflist", chained}}, entry()).fenced);
    // The primary rewrote its file: the entry is gone.
    CHECK_FALSE(verify({{"10-calico.conflist", kCalico}}, entry()).fenced);
    // Not last: a plugin after egress-fence.
    auto list = Json::parse(chained);
    list["plugins"].push_back(Json{{"type", "tuning"}});
    auto v = verify({{"10-calico.conflist", list.dump()}}, std::nullopt);
    CHECK_FALSE(v.fenced);
    CHECK(v.reason.find("not the last plugin") != std::string::npos);
}

TEST_CASE("verify compares the installed entry with the plugin config and validates it") {
    auto files = with_owned({{"10-calico.conflist", kCalico}});
    auto other = entry();
    other["logLevel"] = "debug";
    auto v = verify(files, other);
    CHECK_FALSE(v.fenced);
    CHECK(v.reason.find("differs from the plugin config") != std::string::npos);

    auto broken = Json::parse(render_chained({"10-calico.conflist", kCalico}, entry()));
    broken["plugins"][2]["bogusKey"] = 1;
    v = verify({{"10-calico.conflist", broken.dump()}}, std::nullopt);
    CHECK_FALSE(v.fenced);
    CHECK(v.reason.find("bogusKey") != std::string::npos);
}

TEST_CASE("verify fails for a chain whose cniVersion egress-fence does not speak") {
    auto old = Json::parse(render_chained({"10-calico.conflist", kCalico}, entry()));
    old["cniVersion"] = "0.2.0";
    auto v = verify({{"10-calico.conflist", old.dump()}}, std::nullopt);
    CHECK_FALSE(v.fenced);
    CHECK(v.reason.find("0.2.0") != std::string::npos);
}

TEST_CASE("verify with nothing loadable names the skipped files") {
    auto v = verify({{"00-broken.conflist", "{"}}, std::nullopt);
    CHECK_FALSE(v.fenced);
    CHECK(v.reason.find("00-broken.conflist") != std::string::npos);
}

TEST_CASE("replace_file is atomic, keeps the mode and writes nothing when unchanged") {
    TempDir dir;
    std::string path = dir.str("10-calico.conflist");
    write(path, kCalico, 0600);
    auto before = inode(path);
    CHECK_FALSE(replace_file(path, kCalico, 0644));
    CHECK(inode(path) == before);
    CHECK(replace_file(path, "new", 0644));
    CHECK(read_file(path) == "new");
    CHECK(inode(path) != before);  // a new inode: the old one was never opened for writing
    struct stat st {};
    ::stat(path.c_str(), &st);
    CHECK((st.st_mode & 07777) == 0600);
    CHECK(replace_file(dir.str("fresh.conflist"), "x", 0640));
    ::stat(dir.str("fresh.conflist").c_str(), &st);
    CHECK((st.st_mode & 07777) == 0640);
    // No temp file left behind.
    CHECK(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator{}) == 2);
}

TEST_CASE("read_conf_dir lists conf-named files and skips directories") {
    TempDir dir;
    write(dir.str("10-calico.conflist"), kCalico);
    write(dir.str("README"), "x");
    fs::create_directory(dir.path / "multus.d.conf");
    auto files = read_conf_dir(dir.str());
    REQUIRE(files.size() == 1);
    CHECK(files[0].name == "10-calico.conflist");
    CHECK(read_conf_dir(dir.str("missing")).empty());
}

namespace {

std::string version_answer(const std::string& version) {
    return R"({"cniVersion": "1.1.0", "supportedVersions": ["1.1.0"], "v": ")" + version + "\"}";
}

// A fake bundle: a launcher script that prints what egress-fence.d/egress-fence.real
// holds (a VERSION answer) and fails when the bundle is not there.
std::string make_bundle(const TempDir& src, const std::string& version) {
    fs::create_directories(src.path / "egress-fence.d");
    write(src.str("egress-fence"), "#!/bin/sh\nexec cat \"$(dirname \"$0\")/egress-fence.d/egress-fence.real\"\n",
          0755);
    write(src.str("egress-fence.d/ld-linux-x86-64.so.2"), "loader", 0755);
    write(src.str("egress-fence.d/egress-fence.real"), version_answer(version), 0755);
    write(src.str("egress-fence.d/libc.so.6"), "libc", 0644);
    return src.str("egress-fence");
}

std::vector<std::string> names_in(const TempDir& dir) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir.path)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace

TEST_CASE("install_plugin lays out a versioned bundle behind a symlink and upgrades by rename") {
    TempDir src, bin;
    auto plugin = make_bundle(src, "v1");
    CHECK(install_plugin(plugin, bin.str()));
    CHECK_FALSE(plugin_problem(bin.str()));
    CHECK(read_file(bin.str("egress-fence.d/egress-fence.real")) == version_answer("v1"));
    auto v1 = fs::read_symlink(bin.path / "egress-fence.d").string();
    CHECK(v1.starts_with("egress-fence.d-"));
    auto launcher_inode = inode(bin.str("egress-fence"));
    CHECK_FALSE(install_plugin(plugin, bin.str()));  // idempotent
    CHECK(names_in(bin) == std::vector<std::string>{"egress-fence", "egress-fence.d", v1});

    write(src.str("egress-fence.d/egress-fence.real"), version_answer("v2"), 0755);
    CHECK(install_plugin(plugin, bin.str()));
    auto v2 = fs::read_symlink(bin.path / "egress-fence.d").string();
    CHECK(v2 != v1);
    CHECK(read_file(bin.str("egress-fence.d/egress-fence.real")) == version_answer("v2"));
    // The previous version stays for processes that resolved it just before the swap.
    CHECK(read_file(bin.str(v1 + "/egress-fence.real")) == version_answer("v1"));
    CHECK(inode(bin.str("egress-fence")) == launcher_inode);  // unchanged launcher is not rewritten

    write(src.str("egress-fence.d/egress-fence.real"), version_answer("v3"), 0755);
    CHECK(install_plugin(plugin, bin.str()));
    auto v3 = fs::read_symlink(bin.path / "egress-fence.d").string();
    auto names = names_in(bin);
    CHECK(std::count(names.begin(), names.end(), v1) == 0);  // two versions back: pruned
    CHECK(std::count(names.begin(), names.end(), v2) == 1);
    CHECK(std::count(names.begin(), names.end(), v3) == 1);

    // A changed launcher replaces the directory entry; a process holding the old
    // one (running it) keeps reading the old bytes: nothing was written in place.
    std::ifstream running(bin.str("egress-fence"), std::ios::binary);
    std::string old_launcher = read_file(bin.str("egress-fence"));
    write(src.str("egress-fence"), old_launcher + "# v4\n", 0755);
    CHECK(install_plugin(plugin, bin.str()));
    CHECK(inode(bin.str("egress-fence")) != launcher_inode);
    std::string seen((std::istreambuf_iterator<char>(running)), std::istreambuf_iterator<char>());
    CHECK(seen == old_launcher);

    CHECK(uninstall_plugin(bin.str()));
    CHECK(names_in(bin).empty());
    CHECK(plugin_problem(bin.str()));
    CHECK_FALSE(uninstall_plugin(bin.str()));
}

TEST_CASE("plugin_problem runs the installed plugin and names what fails") {
    TempDir src, bin;
    install_plugin(make_bundle(src, "v1"), bin.str());
    CHECK_FALSE(plugin_problem(bin.str()));
    fs::remove(bin.path / "egress-fence.d");  // the bundle link, as a k3s upgrade or a cleanup might leave it
    auto problem = plugin_problem(bin.str());
    REQUIRE(problem);
    CHECK(problem->find("does not run") != std::string::npos);

    write(bin.str("egress-fence"), "#!/bin/sh\necho hello\n", 0755);
    problem = plugin_problem(bin.str());
    REQUIRE(problem);
    CHECK(problem->find("something other than a CNI version object") != std::string::npos);
}
