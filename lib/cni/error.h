// The one error type of egress-fence. Thrown inside the library, turned into a
// CNI error object ({"cniVersion","code","msg","details"}) in exactly one place:
// the plugin's main (and printed as text by egress-fence-ctl).
#pragma once

#include <exception>
#include <string>
#include <utility>

namespace ef::cni {

// CNI spec codes (SPEC.md "Error codes") and egress-fence's own codes (>= 100).
enum Code : int {
    kIncompatibleVersion = 1,
    kUnsupportedField = 2,
    kUnknownContainer = 3,
    kInvalidEnvironment = 4,
    kIoFailure = 5,
    kDecodeFailure = 6,
    kInvalidConfig = 7,
    kTryAgain = 11,
    kNotAvailable = 50,  // STATUS: the plugin cannot serve ADDs on this node

    kNetnsUnusable = 100,       // CNI_NETNS missing, not a netns, or cannot be entered
    kNftRejected = 101,         // nf_tables refused the batch (errno in details)
    kCheckMismatch = 102,       // CHECK: the table differs from what the config demands
    kNetlinkFailure = 103,      // a netlink socket/dump failed
    kPodSelection = 104,        // annotations forbidden or never delivered; a profile the pod userns breaks
    kAttachmentConflict = 105,  // another attachment of the pod is fenced differently
    kInternal = 199,            // a bug: please report
};

struct Error : std::exception {
    int code;
    std::string msg;
    std::string details;

    Error(int c, std::string m, std::string d = {}) : code(c), msg(std::move(m)), details(std::move(d)) {}

    const char* what() const noexcept override { return msg.c_str(); }
};

}  // namespace ef::cni
