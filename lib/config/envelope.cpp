// Plugin stdin -> Envelope with scan_json(): the whole document is checked (so
// a truncated or garbled one is told apart) but keeps only three top-level
// strings, whatever size or depth the rest has.
#include "config/envelope.h"

#include <array>
#include <optional>

#include "cni/version.h"
#include "config/json_read.h"

namespace ef::config {
namespace {

constexpr std::array<std::string_view, 4> kLogLevels = {"debug", "info", "warn", "error"};

// The raw top-level values of the three keys, the first of each.
struct EnvelopeValues {
    std::optional<std::string> version, log_file, log_level;
    std::vector<std::string> non_strings;  // keys of ours whose value is not a string

    void take(const TopMember& m) {
        std::optional<std::string>* slot = nullptr;
        if (m.key == "cniVersion") slot = &version;
        else if (m.key == "logFile") slot = &log_file;
        else if (m.key == "logLevel") slot = &log_level;
        if (!slot) return;
        if (!m.string_value) non_strings.push_back(m.key + ": expected a string, found " + m.kind);
        else if (!*slot) *slot = *m.string_value;
    }
};

}  // namespace

Envelope read_envelope(std::string_view stdin_bytes) noexcept {
    try {
        return read_envelope(JsonText(stdin_bytes));
    } catch (...) {
        Envelope env;
        env.problems.emplace_back("stdin could not be read (out of memory)");
        return env;
    }
}

Envelope read_envelope(const JsonText& stdin_text) noexcept {
    Envelope env;
    try {
        EnvelopeValues reader;
        bool is_object = false;
        const std::string decode_error = scan_json(stdin_text, is_object,
                                                   [&reader](const TopMember& m) { reader.take(m); });
        if (!decode_error.empty() || !is_object) {
            env.problems.push_back("stdin does not decode as a JSON object" +
                                   (decode_error.empty() ? std::string() : ": " + decode_error));
            return env;
        }
        env.problems = std::move(reader.non_strings);
        if (reader.version) {
            if (cni::is_supported_version(*reader.version)) env.cni_version = *reader.version;
            else env.problems.push_back("cniVersion: \"" + *reader.version + "\" is not a version this plugin speaks");
        } else {
            env.problems.emplace_back("cniVersion: missing or not a string");
        }
        if (reader.log_file) {
            const std::string& f = *reader.log_file;
            if (f.empty() || (f.front() == '/' && f.find('\0') == std::string::npos)) env.log_file = f;
            else env.problems.push_back("logFile: expected an absolute path, found \"" + f + "\"");
        }
        if (reader.log_level) {
            bool known = false;
            for (auto l : kLogLevels) known = known || l == *reader.log_level;
            if (known) env.log_level = *reader.log_level;
            else env.problems.push_back("logLevel: \"" + *reader.log_level + "\" is not debug, info, warn or error");
        }
    } catch (...) {
        // Only allocation can throw here; an envelope with nothing in it is
        // still an answer (defaults: latest version, no log).
        env = Envelope{};
        env.problems.emplace_back("stdin could not be read (out of memory)");
    }
    return env;
}

}  // namespace ef::config
