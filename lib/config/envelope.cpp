// Plugin stdin -> Envelope with nlohmann's SAX parser: it decodes the whole
// document (so a truncated or garbled one is told apart) but keeps only three
// top-level strings, whatever size or depth the rest has.
#include "config/envelope.h"

#include <array>
#include <nlohmann/json.hpp>
#include <optional>

#include "cni/version.h"

namespace ef::config {
namespace {

using json = nlohmann::json;

constexpr std::array<std::string_view, 4> kLogLevels = {"debug", "info", "warn", "error"};

// Collects the raw top-level values of the three keys; everything else is
// walked and dropped.
class EnvelopeReader : public nlohmann::json_sax<json> {
  public:
    std::optional<std::string> version, log_file, log_level;
    std::vector<std::string> non_strings;  // keys of ours whose value is not a string
    bool top_is_object = false;
    std::string decode_error;

    bool null() override { return other("null"); }
    bool boolean(bool) override { return other("a boolean"); }
    bool number_integer(number_integer_t) override { return other("a number"); }
    bool number_unsigned(number_unsigned_t) override { return other("a number"); }
    bool number_float(number_float_t, const string_t&) override { return other("a number"); }
    bool binary(binary_t&) override { return other("binary"); }
    bool string(string_t& s) override {
        if (depth_ == 0) return true;  // a bare string document
        if (auto* slot = ours(); slot && !*slot) *slot = s;
        key_.clear();
        return true;
    }
    bool start_object(std::size_t) override {
        if (depth_ == 0) top_is_object = true;
        open("an object");
        return true;
    }
    bool start_array(std::size_t) override {
        open("an array");
        return true;
    }
    bool end_object() override { return close(); }
    bool end_array() override { return close(); }
    bool key(string_t& k) override {
        if (depth_ == 1) key_ = k;
        return true;
    }
    bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
        decode_error = e.what();
        return false;
    }

  private:
    int depth_ = 0;
    std::string key_;  // the top-level key whose value comes next; "" inside nested values

    std::optional<std::string>* ours() {
        if (depth_ != 1) return nullptr;
        if (key_ == "cniVersion") return &version;
        if (key_ == "logFile") return &log_file;
        if (key_ == "logLevel") return &log_level;
        return nullptr;
    }
    bool other(const char* what) {
        if (depth_ == 1 && ours()) non_strings.push_back(key_ + ": expected a string, found " + what);
        key_.clear();
        return true;
    }
    void open(const char* what) {
        if (depth_ == 1 && ours()) non_strings.push_back(key_ + ": expected a string, found " + what);
        key_.clear();
        ++depth_;
    }
    bool close() {
        --depth_;
        return true;
    }
};

}  // namespace

Envelope read_envelope(std::string_view stdin_bytes) noexcept {
    Envelope env;
    try {
        EnvelopeReader reader;
        bool decoded = json::sax_parse(stdin_bytes, &reader, json::input_format_t::json, true);
        if (!decoded || !reader.top_is_object) {
            env.problems.push_back("stdin does not decode as a JSON object" +
                                   (reader.decode_error.empty() ? std::string() : ": " + reader.decode_error));
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
