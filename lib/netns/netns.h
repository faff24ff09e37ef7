// Entering a pod's network namespace for the duration of a scope.
#pragma once

#include <string>

namespace ef::netns {

// While alive, the calling thread is in the netns at `path`; the destructor
// returns it to the netns it was in before. Throws cni::Error{kNetnsUnusable}
// with a message naming the path when it does not exist, is not a network
// namespace (checked with fstatfs NSFS_MAGIC / setns(CLONE_NEWNET)), or cannot
// be entered (errno given). Not copyable, not movable.
class ScopedNetns {
  public:
    explicit ScopedNetns(const std::string& path);
    ~ScopedNetns();
    ScopedNetns(const ScopedNetns&) = delete;
    ScopedNetns& operator=(const ScopedNetns&) = delete;

  private:
    int original_fd_ = -1;
};

// True when `path` exists and is a network namespace file (nsfs).
bool is_netns(const std::string& path);

// True when `path` is the same netns as the one this process is in now
// (ADD refuses to fence the host).
bool is_current_netns(const std::string& path);

// True when the netns at `path` is owned by the user namespace this process
// is in; false when a child user namespace owns it (a pod with hostUsers:
// false whose runtime created the netns inside the pod's user namespace).
// `meta skuid` shows socket owners as that owner namespace maps them
// (from_kuid_munged), so this decides what an exempt UID means. Throws
// cni::Error{kNetnsUnusable} when the kernel cannot tell (NS_GET_USERNS,
// Linux 4.9+): the caller must not guess.
bool owned_by_own_userns(const std::string& path);

}  // namespace ef::netns
