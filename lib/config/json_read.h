// JSON text -> nlohmann::json, parsed by simdjson (Debian's libsimdjson): its
// DOM parser validates the whole text, UTF-8 included, at gigabytes per
// second, so a 6 MB allow list costs milliseconds. nlohmann::json stays the
// document type. Internal to lib/config (and its tests).
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace ef::config {

// Elements of `profiles.<name>.allow` (at the top level of plugin stdin) that
// read_stdin_json() decoded straight into AllowEntry, by profile name, in
// array order. In the document each such element is a placeholder, a value of
// type `discarded` (which parsing never produces otherwise); the other
// elements are ordinary values for validate() to report on.
struct DecodedAllow {
    std::map<std::string, std::vector<AllowEntry>, std::less<>> by_profile;
};

// Bytes past the end of a text that JsonText may read (never write) when the
// caller says they are there: simdjson reads its input in 64-byte blocks.
inline constexpr std::size_t kJsonPadding = 64;

// One text parsed once, for every reader of it (the plugin reads its stdin
// with scan_json() for the envelope, then with read_stdin_json()). Parsing
// never throws; the readers report what was wrong. `padded`: `text` is
// followed by kJsonPadding readable bytes (a std::string with that much spare
// capacity), which spares simdjson a copy of it. The text must outlive this.
class JsonText {
  public:
    explicit JsonText(std::string_view text, bool padded = false);
    ~JsonText();
    JsonText(const JsonText&) = delete;
    JsonText& operator=(const JsonText&) = delete;
    std::string_view text() const { return text_; }

    struct State;
    State& state() const { return *state_; }

  private:
    std::string_view text_;
    std::unique_ptr<State> state_;
};

// One JSON value, the whole text (whitespace around it only: space, tab, LF,
// CR; a leading UTF-8 byte-order mark is skipped, as nlohmann does). Strings
// must be valid UTF-8 (no overlong forms, no encoded surrogates, nothing above
// U+10FFFF), with control characters escaped and \u surrogates in pairs; a
// NUL byte is refused anywhere. Numbers as nlohmann types them: a
// non-negative integer fitting 64 bits is number_unsigned (`-0` too), a
// negative one fitting int64 number_integer, anything else number_float; one
// beyond double's range is refused. Nesting deeper than kMaxJsonDepth and a
// key repeated in one object are refused. Throws cni::Error{kDecodeFailure}:
// "input is not valid JSON (byte N): <what>" (the byte and the words are
// nlohmann's parser's: simdjson's errors name no byte, so a text simdjson
// refuses is read again by nlohmann to say where and why), "JSON nesting is
// deeper than 64 levels (at byte N)" or "key \"k\" appears twice in one JSON
// object; remove one". No size limit here (parse_json).
nlohmann::json read_json(std::string_view text);

// read_json() for plugin stdin: an array at `profiles.<name>.allow` of the
// top-level object has every element that is a plain valid allow entry
// (an object of cidr, protocol and ports as validate() accepts them, with
// ports as integers or "lo-hi" strings) decoded into `allow` instead of the
// document. Accepts and refuses exactly what read_json() does.
nlohmann::json read_stdin_json(std::string_view text, DecodedAllow& allow);
nlohmann::json read_stdin_json(const JsonText& text, DecodedAllow& allow);

// read_stdin_json() under parse_json()'s size limit: what parse_netconf() reads.
nlohmann::json parse_stdin_json(std::string_view bytes, DecodedAllow& allow);
nlohmann::json parse_stdin_json(const JsonText& bytes, DecodedAllow& allow);

// One member of a top-level object, as scan_json() reports it.
struct TopMember {
    std::string key;
    // The decoded value when it is a string; nullptr otherwise.
    const std::string* string_value = nullptr;
    // "a string", "an object", "an array", "a number", "a boolean", "null".
    const char* kind = "";
};

// Checks that `text` is one JSON value by read_json()'s rules, without a
// nesting limit and letting a key repeat, and without building it. Calls
// `member` for each member of the value when it is an object, in text order
// (also for members before an error further on). Returns "" when the text is
// valid, else read_json()'s message; `is_object` says whether the value is one.
std::string scan_json(std::string_view text, bool& is_object, const std::function<void(const TopMember&)>& member);
std::string scan_json(const JsonText& text, bool& is_object, const std::function<void(const TopMember&)>& member);

}  // namespace ef::config
