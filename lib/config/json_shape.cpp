#include "config/json_shape.h"

#include <algorithm>
#include <cctype>
#include <limits>

namespace ef::config::shape {

std::string child(std::string_view parent, std::string_view key) {
    if (parent.empty()) return std::string(key);
    std::string p(parent);
    p += '.';
    p += key;
    return p;
}

std::string item(std::string_view parent, std::size_t i) { return std::string(parent) + "[" + std::to_string(i) + "]"; }

std::string describe(const json& v) {
    switch (v.type()) {
        case json::value_t::null: return "null";
        case json::value_t::boolean: return std::string("boolean ") + (v.get<bool>() ? "true" : "false");
        case json::value_t::number_integer:
        case json::value_t::number_unsigned:
        case json::value_t::number_float: return "number " + v.dump();
        case json::value_t::string: {
            // Long values would bury the message; the path already says where it is.
            std::string text = v.dump(-1, ' ', false, json::error_handler_t::replace);
            if (text.size() > 42) text = text.substr(0, 40) + "...\"";
            return "string " + text;
        }
        case json::value_t::array: return "array";
        case json::value_t::object: return "object";
        default: return "binary";
    }
}

void add(std::vector<Problem>& problems, std::string path, std::string message) {
    problems.push_back(Problem{std::move(path), std::move(message)});
}

void add_type_problem(std::vector<Problem>& problems, std::string path, std::string_view expected, const json& found) {
    add(problems, std::move(path), "expected " + std::string(expected) + ", found " + describe(found));
}

bool expect_object(const json& v, const std::string& path, std::vector<Problem>& problems) {
    if (v.is_object()) return true;
    add_type_problem(problems, path, "object", v);
    return false;
}

bool expect_array(const json& v, const std::string& path, std::vector<Problem>& problems) {
    if (v.is_array()) return true;
    add_type_problem(problems, path, "array", v);
    return false;
}

std::optional<std::string> read_string(const json& v, const std::string& path, std::vector<Problem>& problems) {
    if (v.is_string()) return v.get<std::string>();
    add_type_problem(problems, path, "string", v);
    return std::nullopt;
}

std::optional<bool> read_bool(const json& v, const std::string& path, std::vector<Problem>& problems) {
    if (v.is_boolean()) return v.get<bool>();
    add_type_problem(problems, path, "boolean", v);
    return std::nullopt;
}

namespace {

// Parsed text gives unsigned for non-negative integers, but a document built
// in code holds signed ones. Floats (1.5, even 1.0) and strings are not integers.
std::optional<uint64_t> non_negative_integer(const json& v) {
    if (v.is_number_unsigned()) return v.get<uint64_t>();
    if (v.is_number_integer() && v.get<int64_t>() >= 0) return static_cast<uint64_t>(v.get<int64_t>());
    return std::nullopt;
}

}  // namespace

std::optional<uint32_t> read_uint(const json& v, const std::string& path, uint32_t lo, uint32_t hi,
                                  std::vector<Problem>& problems) {
    const auto n = non_negative_integer(v);
    if (n && *n >= lo && *n <= hi) return static_cast<uint32_t>(*n);
    add_type_problem(problems, path, "an integer from " + std::to_string(lo) + " to " + std::to_string(hi), v);
    return std::nullopt;
}

std::optional<std::string> read_choice(const json& v, const std::string& path, Keys choices,
                                       std::vector<Problem>& problems) {
    auto s = read_string(v, path, problems);
    if (!s) return std::nullopt;
    if (std::find(choices.begin(), choices.end(), *s) != choices.end()) return s;
    add(problems, path, "expected one of " + join(choices) + ", found " + describe(v));
    return std::nullopt;
}

void reject_unknown_keys(const json& obj, Keys known, const std::string& path, std::vector<Problem>& problems) {
    for (const auto& [key, value] : obj.items()) {
        if (std::find(known.begin(), known.end(), key) != known.end()) continue;
        std::string message = "unknown key";
        if (auto near = closest_key(key, known)) message += " (did you mean \"" + std::string(*near) + "\"?)";
        add(problems, child(path, key), std::move(message));
    }
}

namespace {

// Case and separators are the usual typos between JSON styles
// (allowed_profiles, AllowedProfiles), so compare without them.
std::string fold(std::string_view s) {
    std::string out;
    for (char c : s)
        if (c != '_' && c != '-') out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t above = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diagonal = above;
        }
    }
    return row[b.size()];
}

}  // namespace

std::optional<std::string_view> closest_key(std::string_view key, Keys known) {
    const std::string folded = fold(key);
    std::optional<std::string_view> best;
    std::size_t best_distance = std::numeric_limits<std::size_t>::max();
    for (auto candidate : known) {
        const std::size_t d = edit_distance(folded, fold(candidate));
        if (d < best_distance) {
            best_distance = d;
            best = candidate;
        }
    }
    // Two edits catch plurals and swapped letters; a key that short would be
    // "close" to anything.
    if (best && best_distance <= 2 && best_distance < folded.size()) return best;
    return std::nullopt;
}

std::string join(Keys words) {
    std::string out;
    for (auto w : words) {
        if (!out.empty()) out += ", ";
        out += w;
    }
    return out;
}

}  // namespace ef::config::shape
