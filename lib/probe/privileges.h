// What a process inside a fenced pod could do to the fence with the identity
// and capabilities it has, read from /proc/<pid>/status. The fence trusts the
// socket owner's UID (exempt UIDs go anywhere) and holds only against a
// process without CAP_NET_ADMIN (which could rewrite the table) and without
// CAP_NET_RAW (AF_XDP frames skip every netfilter hook). Pure: text in,
// findings out; `egress-fence-ctl probe` reads the file and decides.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ef::probe {

// Capability numbers (linux/capability.h) the probe looks at.
inline constexpr int kCapChown = 0;
inline constexpr int kCapFowner = 3;
inline constexpr int kCapSetgid = 6;
inline constexpr int kCapSetuid = 7;
inline constexpr int kCapNetAdmin = 12;
inline constexpr int kCapNetRaw = 13;

// The lines of /proc/<pid>/status that decide it. UIDs are as seen in the
// process's own user namespace (which is where setuid() acts).
struct Privileges {
    std::array<uint32_t, 4> uids{};  // real, effective, saved, filesystem
    uint64_t inheritable = 0;
    uint64_t permitted = 0;
    uint64_t effective = 0;
    uint64_t bounding = 0;
    uint64_t ambient = 0;
    bool no_new_privs = false;
};

// Parses Uid:, CapInh:, CapPrm:, CapEff:, CapBnd:, CapAmb: and NoNewPrivs:.
// Throws std::runtime_error naming the line when one is missing or malformed
// (NoNewPrivs: exists since Linux 4.10, CapAmb: since 4.3): a probe that
// cannot read its own privileges must not report them harmless.
Privileges parse_status(std::string_view status_text);

// How the process can use capability `cap`: "" when it cannot; "holds it
// (CapPrm)" (the first of permitted, effective, ambient that has it); or
// "can regain it by exec (...)" when no_new_privs is off and the capability
// is in the bounding set (a setuid-root binary, or one with file
// capabilities such as ping in many images, gives it back) or in the
// inheritable set (a file with that inheritable file capability).
std::string capability_reach(const Privileges& p, int cap);

// Every way the process could run a socket under a UID other than its own,
// and so as an exempt UID, one sentence each; empty when there is none:
// - a real, effective or saved UID 0 (root in its user namespace);
// - real, effective and saved UIDs that differ (setresuid() may switch
//   among them without any capability);
// - CAP_SETUID or CAP_SETGID held or regainable by exec (capability_reach);
// - with no_new_privs off, CAP_CHOWN and CAP_FOWNER both reachable: enough
//   to make a file owned by any UID setuid and exec it.
// A process with no_new_privs on and none of these cannot change its UID:
// setuid bits and file capabilities are ignored on exec.
std::vector<std::string> uid_change_paths(const Privileges& p);

}  // namespace ef::probe
