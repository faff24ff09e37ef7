// The few keys of plugin stdin that every verb reads whatever the rest holds:
// the cniVersion an answer is given in, and where the invocation is logged.
// DEL reads nothing else (a teardown must never fail on config skew: a newer
// chart's keys, a rollback, CRI-O's cached ADD-time config), and every verb
// uses it so that an error object answers in the config's version even when
// the config is invalid. Independent of validate(): no schema rule but these
// three keys' own applies.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace ef::config {

struct Envelope {
    // The top-level cniVersion when it is a string naming a version we speak
    // (cni::kSupportedVersions); "" otherwise.
    std::string cni_version;
    // logFile when it is an absolute path without NUL; "" otherwise.
    std::string log_file;
    // logLevel when it is debug, info, warn or error; "info" otherwise.
    std::string log_level = "info";
    // What could not be read, one "key: what is wrong" each (for the log).
    std::vector<std::string> problems;
};

// Reads the envelope of `stdin_bytes`. Never throws. Only top-level keys
// count; a repeated key keeps its first value. Input that does not decode as
// one JSON object (truncated, not JSON, not an object) yields nothing but a
// problem: no value is taken from half a document.
Envelope read_envelope(std::string_view stdin_bytes) noexcept;
// The same for a text parsed already (config/json_read.h).
class JsonText;
Envelope read_envelope(const JsonText& stdin_text) noexcept;

}  // namespace ef::config
