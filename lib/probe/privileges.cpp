// parse_status(), capability_reach(), uid_change_paths(): see privileges.h.
#include "probe/privileges.h"

#include <charconv>
#include <optional>
#include <stdexcept>

namespace ef::probe {
namespace {

bool has(uint64_t set, int cap) { return ((set >> cap) & 1U) != 0; }

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

template <typename T>
std::optional<T> parse_number(std::string_view s, int base) {
    T v{};
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
    if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
    return v;
}

[[noreturn]] void malformed(std::string_view key, std::string_view value) {
    throw std::runtime_error("/proc/self/status: cannot read \"" + std::string(key) + "\" (\"" + std::string(value) +
                             "\")");
}

std::array<uint32_t, 4> parse_uids(std::string_view value) {
    std::array<uint32_t, 4> uids{};
    std::string_view rest = value;
    for (auto& uid : uids) {
        rest = trim(rest);
        auto end = rest.find_first_of(" \t");
        auto v = parse_number<uint32_t>(rest.substr(0, end), 10);
        if (!v) malformed("Uid:", value);
        uid = *v;
        rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end);
    }
    if (!trim(rest).empty()) malformed("Uid:", value);
    return uids;
}

const char* cap_name(int cap) {
    switch (cap) {
        case kCapChown: return "CAP_CHOWN";
        case kCapFowner: return "CAP_FOWNER";
        case kCapSetgid: return "CAP_SETGID";
        case kCapSetuid: return "CAP_SETUID";
        case kCapNetAdmin: return "CAP_NET_ADMIN";
        case kCapNetRaw: return "CAP_NET_RAW";
        default: return "a capability";
    }
}

}  // namespace

Privileges parse_status(std::string_view text) {
    Privileges p;
    struct Field {
        std::string_view key;
        uint64_t* caps;
        bool seen = false;
    };
    std::array<Field, 5> caps{{{"CapInh:", &p.inheritable},
                               {"CapPrm:", &p.permitted},
                               {"CapEff:", &p.effective},
                               {"CapBnd:", &p.bounding},
                               {"CapAmb:", &p.ambient}}};
    bool seen_uid = false, seen_nnp = false;
    while (!text.empty()) {
        auto eol = text.find('\n');
        std::string_view line = text.substr(0, eol);
        text = eol == std::string_view::npos ? std::string_view{} : text.substr(eol + 1);
        auto colon = line.find(':');
        if (colon == std::string_view::npos) continue;
        std::string_view key = line.substr(0, colon + 1);
        std::string_view value = trim(line.substr(colon + 1));
        if (key == "Uid:") {
            p.uids = parse_uids(value);
            seen_uid = true;
        } else if (key == "NoNewPrivs:") {
            if (value != "0" && value != "1") malformed(key, value);
            p.no_new_privs = value == "1";
            seen_nnp = true;
        } else {
            for (auto& f : caps) {
                if (key != f.key) continue;
                auto v = parse_number<uint64_t>(value, 16);
                if (!v) malformed(key, value);
                *f.caps = *v;
                f.seen = true;
            }
        }
    }
    if (!seen_uid) throw std::runtime_error("/proc/self/status: no \"Uid:\" line");
    if (!seen_nnp) throw std::runtime_error("/proc/self/status: no \"NoNewPrivs:\" line (Linux 4.10 or later needed)");
    for (const auto& f : caps)
        if (!f.seen) throw std::runtime_error("/proc/self/status: no \"" + std::string(f.key) + "\" line");
    return p;
}

std::string capability_reach(const Privileges& p, int cap) {
    if (has(p.permitted, cap)) return "holds it (CapPrm)";
    if (has(p.effective, cap)) return "holds it (CapEff)";
    if (has(p.ambient, cap)) return "holds it (CapAmb)";
    if (p.no_new_privs) return "";
    if (has(p.bounding, cap))
        return "can regain it by exec (it is in the bounding set and no_new_privs is off: a setuid-root binary or "
               "one with file capabilities gives it back)";
    if (has(p.inheritable, cap))
        return "can regain it by exec (it is in the inheritable set and no_new_privs is off: a binary with that "
               "inheritable file capability gives it back)";
    return "";
}

std::vector<std::string> uid_change_paths(const Privileges& p) {
    std::vector<std::string> out;
    const auto [real, effective, saved, fs] = p.uids;
    (void)fs;  // follows the effective UID; setfsuid() obeys the same rules
    if (real == 0 || effective == 0 || saved == 0)
        out.push_back("it runs as root (real/effective/saved UID " + std::to_string(real) + "/" +
                      std::to_string(effective) + "/" + std::to_string(saved) +
                      " in its user namespace): root can take any UID");
    else if (real != effective || real != saved)
        out.push_back("its real/effective/saved UIDs differ (" + std::to_string(real) + "/" +
                      std::to_string(effective) + "/" + std::to_string(saved) +
                      "): setresuid() switches among them without any capability");
    for (int cap : {kCapSetuid, kCapSetgid}) {
        std::string reach = capability_reach(p, cap);
        if (!reach.empty()) out.push_back(std::string(cap_name(cap)) + ": " + reach);
    }
    if (!p.no_new_privs) {
        std::string chown = capability_reach(p, kCapChown), fowner = capability_reach(p, kCapFowner);
        if (!chown.empty() && !fowner.empty())
            out.emplace_back(
                "CAP_CHOWN and CAP_FOWNER are within reach and no_new_privs is off: it can make a copy of a binary "
                "owned by any UID, set its setuid bit, and exec it");
    }
    return out;
}

}  // namespace ef::probe
