// select_profile(): which profile a pod gets, narrowed by its annotations.
#include <algorithm>

#include "cni/error.h"
#include "config/values.h"

namespace ef::config {

namespace {

bool namespace_matches(const Selector& s, const std::string& ns) {
    if (s.namespaces.empty()) return true;
    return std::any_of(s.namespaces.begin(), s.namespaces.end(),
                       [&](const std::string& glob) { return glob_match(glob, ns); });
}

bool annotations_match(const Selector& s, const std::map<std::string, std::string>& pod) {
    return std::all_of(s.annotations.begin(), s.annotations.end(), [&](const auto& wanted) {
        auto it = pod.find(wanted.first);
        return it != pod.end() && it->second == wanted.second;
    });
}

std::string where(std::size_t index) { return "selectors[" + std::to_string(index) + "]"; }

// Whether the pod's annotations decide if this selector picks it (or with
// which exempt UID): such a selector cannot be evaluated without them.
bool selects_by_annotation(const Selector& s) { return !s.annotations.empty() || s.exempt_uid_annotation; }

[[noreturn]] void throw_annotations_not_delivered(std::size_t index) {
    throw cni::Error(cni::kPodSelection,
                     "the runtime delivers no pod annotations (runtimeConfig has no "
                     "\"io.kubernetes.cri.pod-annotations\" although the entry declares that capability), and " +
                         where(index) +
                         ", which selects by annotation, matches this pod's namespace: cannot tell whether the "
                         "pod must be fenced, refusing to start it unfenced",
                     "use a runtime that passes pod annotations to CNI plugins (containerd 1.5 or later, CRI-O "
                     "1.29 or later; inside a Multus delegate network no annotations arrive), or select these pods "
                     "by namespace");
}

// The selector's own profile first, then its allowedProfiles, each once.
std::vector<std::string> allowed_profiles(const Selector& s) {
    std::vector<std::string> names{s.profile};
    for (const auto& name : s.allowed_profiles)
        if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
    return names;
}

std::string chosen_profile(const PluginConfig& cfg, const Selector& s, std::size_t index, const Pod& pod) {
    auto asked = pod.annotations.find(cfg.profile_annotation);
    if (asked == pod.annotations.end()) return s.profile;
    const auto allowed = allowed_profiles(s);
    if (std::find(allowed.begin(), allowed.end(), asked->second) != allowed.end()) return asked->second;
    std::string list;
    for (const auto& name : allowed) list += (list.empty() ? "" : ", ") + name;
    throw cni::Error(cni::kPodSelection, "annotation " + cfg.profile_annotation + "=\"" + asked->second +
                                             "\" is not allowed for pods matched by " + where(index) +
                                             "; allowed: " + list);
}

uint32_t annotated_uid(const Selector& s, std::size_t index, const Pod& pod) {
    const std::string& key = *s.exempt_uid_annotation;
    const std::string rule = "; " + where(index) + " requires it to name the proxy's UID";
    auto found = pod.annotations.find(key);
    if (found == pod.annotations.end())
        throw cni::Error(cni::kPodSelection, "annotation " + key + " is missing" + rule);
    const std::string& value = found->second;
    auto uid = parse_decimal_u32(value);
    if (!uid)
        throw cni::Error(cni::kPodSelection, "annotation " + key + "=\"" + value +
                                                 "\" is not a UID (a plain decimal number up to 4294967295)" + rule);
    // Root is never exempt; see exemptUids in profile.cpp.
    if (*uid == 0)
        throw cni::Error(cni::kPodSelection, "annotation " + key + "=\"0\": UID 0 (root) cannot be exempt" + rule);
    if (s.exempt_uid_range && (*uid < s.exempt_uid_range->lo || *uid > s.exempt_uid_range->hi))
        throw cni::Error(cni::kPodSelection, "annotation " + key + "=\"" + value + "\" is outside " + where(index) +
                                                 ".exemptUidRange " + std::to_string(s.exempt_uid_range->lo) + "-" +
                                                 std::to_string(s.exempt_uid_range->hi));
    return *uid;
}

// A pod that expects a newer contract than the config implements must not
// start with a fence it does not understand.
void check_contract(const Selector& s, std::size_t index, const Pod& pod) {
    if (!s.contract_version_annotation) return;
    const std::string& key = *s.contract_version_annotation;
    auto found = pod.annotations.find(key);
    if (found == pod.annotations.end()) return;
    auto version = parse_decimal_u32(found->second);
    if (!version || *version == 0)
        throw cni::Error(cni::kPodSelection, "annotation " + key + "=\"" + found->second +
                                                 "\" is not a contract version (a plain decimal number from 1)");
    if (*version > s.max_contract_version)
        throw cni::Error(cni::kPodSelection, "annotation " + key + "=\"" + found->second +
                                                 "\" asks for a newer contract than " + where(index) +
                                                 " implements (up to " + std::to_string(s.max_contract_version) +
                                                 "): refusing to start the pod with a fence it may not expect");
}

// The profile called `name`, all but its allow list copied.
ProfileRef profile_named(const PluginConfig& cfg, const std::string& name, std::size_t index) {
    auto it = cfg.profiles.find(name);
    // validate() rules this out; a hand-built config may not have.
    if (it == cfg.profiles.end())
        throw cni::Error(cni::kInvalidConfig, where(index) + " names profile \"" + name + "\", which does not exist");
    const Profile& p = it->second;
    Profile head{name, p.exempt_uids, {}, p.tcp_deny, p.mode, p.log, p.inbound_peers, p.annotated_uid};
    return ProfileRef{std::move(head), &p.allow};
}

}  // namespace

std::optional<Profile> select_profile(const PluginConfig& cfg, const Pod& pod) {
    auto ref = select_profile_ref(cfg, pod);
    if (!ref) return std::nullopt;
    Profile profile = std::move(ref->head);
    profile.allow = *ref->allow;
    return profile;
}

std::optional<ProfileRef> select_profile_ref(const PluginConfig& cfg, const Pod& pod) {
    for (std::size_t i = 0; i < cfg.selectors.size(); ++i) {
        const Selector& s = cfg.selectors[i];
        if (!namespace_matches(s, pod.namespace_)) continue;
        if (!pod.annotations_delivered && selects_by_annotation(s)) throw_annotations_not_delivered(i);
        if (!annotations_match(s, pod.annotations)) continue;
        check_contract(s, i, pod);
        ProfileRef ref = profile_named(cfg, chosen_profile(cfg, s, i, pod), i);
        Profile& profile = ref.head;
        if (s.exempt_uid_annotation) {
            profile.annotated_uid = annotated_uid(s, i, pod);
            auto& uids = profile.exempt_uids;
            uids.push_back(*profile.annotated_uid);
            std::sort(uids.begin(), uids.end());
            uids.erase(std::unique(uids.begin(), uids.end()), uids.end());
        }
        return ref;
    }
    return std::nullopt;
}

}  // namespace ef::config
