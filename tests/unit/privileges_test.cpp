// What probe reads from /proc/<pid>/status and concludes: who could change
// its UID (and so act as an exempt UID), and who can reach a capability.
#include "probe/privileges.h"

#include <doctest/doctest.h>

#include <stdexcept>
#include <string>

using namespace ef::probe;

namespace {

// A /proc/<pid>/status as Linux 6.x prints it, with the fields the probe reads.
std::string status(const std::string& uid, const std::string& inh, const std::string& prm, const std::string& eff,
                   const std::string& bnd, const std::string& amb, int nnp) {
    return "Name:\tprobe\nUmask:\t0022\nState:\tR (running)\nUid:\t" + uid + "\nGid:\t1000\t1000\t1000\t1000\n" +
           "CapInh:\t" + inh + "\nCapPrm:\t" + prm + "\nCapEff:\t" + eff + "\nCapBnd:\t" + bnd + "\nCapAmb:\t" + amb +
           "\nNoNewPrivs:\t" + std::to_string(nnp) + "\nSeccomp:\t2\n";
}

constexpr const char* kNone = "0000000000000000";
// containerd's default set: CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID
// SETPCAP NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP.
constexpr const char* kContainerd = "00000000a80425fb";
constexpr const char* kAllCaps = "000001ffffffffff";

bool mentions(const std::vector<std::string>& lines, const std::string& text) {
    for (const auto& l : lines)
        if (l.find(text) != std::string::npos) return true;
    return false;
}

}  // namespace

TEST_CASE("parse_status reads UIDs, the five capability sets and no_new_privs") {
    Privileges p = parse_status(status("1000\t1001\t1002\t1003", "0000000000000001", "0000000000000080",
                                       "0000000000000040", kContainerd, "0000000000002000", 1));
    CHECK(p.uids == std::array<uint32_t, 4>{1000, 1001, 1002, 1003});
    CHECK(p.inheritable == 1);
    CHECK(p.permitted == 0x80);
    CHECK(p.effective == 0x40);
    CHECK(p.bounding == 0xa80425fb);
    CHECK(p.ambient == 0x2000);
    CHECK(p.no_new_privs);
}

TEST_CASE("parse_status refuses a status it cannot read fully: never a harmless default") {
    const std::string good = status("1000\t1000\t1000\t1000", kNone, kNone, kNone, kNone, kNone, 1);
    auto without = [&](const std::string& key) {
        std::string s = good;
        auto at = s.find(key);
        REQUIRE(at != std::string::npos);
        s.erase(at, s.find('\n', at) - at + 1);
        return s;
    };
    for (const char* key : {"Uid:", "CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:", "NoNewPrivs:"}) {
        INFO(key);
        CHECK_THROWS_AS(parse_status(without(key)), std::runtime_error);
    }
    CHECK_THROWS_AS(parse_status(status("1000\t1000", kNone, kNone, kNone, kNone, kNone, 1)), std::runtime_error);
    CHECK_THROWS_AS(parse_status(status("1000\t1000\t1000\tx", kNone, kNone, kNone, kNone, kNone, 1)),
                    std::runtime_error);
    CHECK_THROWS_AS(parse_status(status("1000\t1000\t1000\t1000", "zz", kNone, kNone, kNone, kNone, 1)),
                    std::runtime_error);
    CHECK_THROWS_AS(parse_status(status("1000\t1000\t1000\t1000", kNone, kNone, kNone, kNone, kNone, 2)),
                    std::runtime_error);
}

TEST_CASE("a non-root UID with no capability and no_new_privs cannot change its UID or reach a capability") {
    Privileges p = parse_status(status("1000\t1000\t1000\t1000", kNone, kNone, kNone, kAllCaps, kNone, 1));
    CHECK(uid_change_paths(p).empty());
    for (int cap : {kCapSetuid, kCapSetgid, kCapNetAdmin, kCapNetRaw, kCapChown})
        CHECK(capability_reach(p, cap).empty());
    // Bounding set empty instead, no_new_privs off: the same.
    p = parse_status(status("1000\t1000\t1000\t1000", kNone, kNone, kNone, kNone, kNone, 0));
    CHECK(uid_change_paths(p).empty());
}

TEST_CASE("root in its user namespace can change its UID, whatever its capabilities") {
    for (const char* uid : {"0\t0\t0\t0", "1000\t0\t0\t0", "1000\t1000\t0\t1000", "0\t1000\t1000\t1000"}) {
        INFO(uid);
        Privileges p = parse_status(status(uid, kNone, kNone, kNone, kNone, kNone, 1));
        auto paths = uid_change_paths(p);
        REQUIRE(paths.size() == 1);
        CHECK(paths[0].find("runs as root") != std::string::npos);
    }
}

TEST_CASE("real, effective and saved UIDs that differ can be switched among without a capability") {
    Privileges p = parse_status(status("1000\t1337\t1337\t1337", kNone, kNone, kNone, kNone, kNone, 1));
    auto paths = uid_change_paths(p);
    REQUIRE(paths.size() == 1);
    CHECK(paths[0].find("1000/1337/1337") != std::string::npos);
    // The filesystem UID alone does not decide it.
    p = parse_status(status("1000\t1000\t1000\t1337", kNone, kNone, kNone, kNone, kNone, 1));
    CHECK(uid_change_paths(p).empty());
}

TEST_CASE("CAP_SETUID or CAP_SETGID held in any set is a way to change UID") {
    struct Case {
        const char* inh;
        const char* prm;
        const char* eff;
        const char* amb;
        const char* expect;
    };
    for (const Case& c : {Case{kNone, "0000000000000080", kNone, kNone, "CAP_SETUID: holds it (CapPrm)"},
                          Case{kNone, kNone, "0000000000000080", kNone, "CAP_SETUID: holds it (CapEff)"},
                          Case{kNone, kNone, kNone, "0000000000000080", "CAP_SETUID: holds it (CapAmb)"},
                          Case{kNone, "0000000000000040", kNone, kNone, "CAP_SETGID: holds it (CapPrm)"}}) {
        INFO(c.expect);
        // no_new_privs does not take away what is held.
        Privileges p = parse_status(status("1000\t1000\t1000\t1000", c.inh, c.prm, c.eff, kNone, c.amb, 1));
        CHECK(mentions(uid_change_paths(p), c.expect));
    }
}

TEST_CASE("CAP_SETUID regainable by exec counts only without no_new_privs") {
    // A non-root UID with an empty effective set but containerd's bounding set:
    // a setuid-root binary (or file capabilities) gives CAP_SETUID back.
    Privileges p = parse_status(status("1000\t1000\t1000\t1000", kNone, kNone, kNone, kContainerd, kNone, 0));
    auto paths = uid_change_paths(p);
    CHECK(mentions(paths, "CAP_SETUID: can regain it by exec (it is in the bounding set"));
    CHECK(mentions(paths, "CAP_SETGID: can regain it by exec"));
    CHECK(mentions(paths, "CAP_CHOWN and CAP_FOWNER"));
    p.no_new_privs = true;
    CHECK(uid_change_paths(p).empty());
    // In the inheritable set only (not bounding): a file with that inheritable capability.
    p = parse_status(status("1000\t1000\t1000\t1000", "0000000000000080", kNone, kNone, kNone, kNone, 0));
    CHECK(mentions(uid_change_paths(p), "CAP_SETUID: can regain it by exec (it is in the inheritable set"));
}

TEST_CASE("without no_new_privs, CAP_CHOWN with CAP_FOWNER is enough to make and exec a setuid binary of any UID") {
    // SETUID and SETGID gone from every set, CHOWN (0) and FOWNER (3) left in the bounding set.
    Privileges p = parse_status(status("1000\t1000\t1000\t1000", kNone, kNone, kNone, "0000000000000009", kNone, 0));
    auto paths = uid_change_paths(p);
    REQUIRE(paths.size() == 1);
    CHECK(paths[0].find("CAP_CHOWN and CAP_FOWNER") != std::string::npos);
    // Either alone is not.
    p.bounding = 0x1;
    CHECK(uid_change_paths(p).empty());
    p.bounding = 0x8;
    CHECK(uid_change_paths(p).empty());
    // With no_new_privs setuid bits are ignored on exec.
    p.bounding = 0x9;
    p.no_new_privs = true;
    CHECK(uid_change_paths(p).empty());
}

TEST_CASE("capability_reach: held first, then regainable by exec, for CAP_NET_ADMIN and CAP_NET_RAW") {
    Privileges p = parse_status(status("1000\t1000\t1000\t1000", kNone, "0000000000001000", kNone, kNone, kNone, 1));
    CHECK(capability_reach(p, kCapNetAdmin) == "holds it (CapPrm)");
    CHECK(capability_reach(p, kCapNetRaw).empty());
    p = parse_status(status("1000\t1000\t1000\t1000", kNone, kNone, kNone, "0000000000003000", kNone, 0));
    CHECK(capability_reach(p, kCapNetAdmin).starts_with("can regain it by exec"));
    CHECK(capability_reach(p, kCapNetRaw).starts_with("can regain it by exec"));
    p.no_new_privs = true;
    CHECK(capability_reach(p, kCapNetAdmin).empty());
    CHECK(capability_reach(p, kCapNetRaw).empty());
}
