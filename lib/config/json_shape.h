// Checking the shape of config JSON (types, required and unknown keys) while
// collecting every problem with its JSON path. Internal to lib/config.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace ef::config::shape {

using nlohmann::json;
using Keys = std::span<const std::string_view>;

// `parent.key`, or just `key` at the top level.
std::string child(std::string_view parent, std::string_view key);
// `parent[i]`
std::string item(std::string_view parent, std::size_t i);

// What a value is, for "expected X, found Y": `string "abc"`, `number 5`, `object`...
std::string describe(const json& v);

void add(std::vector<Problem>& problems, std::string path, std::string message);
void add_type_problem(std::vector<Problem>& problems, std::string path, std::string_view expected, const json& found);

// Each returns false (and records a problem at `path`) when `v` has another JSON type.
bool expect_object(const json& v, const std::string& path, std::vector<Problem>& problems);
bool expect_array(const json& v, const std::string& path, std::vector<Problem>& problems);

std::optional<std::string> read_string(const json& v, const std::string& path, std::vector<Problem>& problems);
std::optional<bool> read_bool(const json& v, const std::string& path, std::vector<Problem>& problems);
// An integer (not a float, not a numeric string) in [lo, hi].
std::optional<uint32_t> read_uint(const json& v, const std::string& path, uint32_t lo, uint32_t hi,
                                  std::vector<Problem>& problems);
// A string that must be one of `choices`.
std::optional<std::string> read_choice(const json& v, const std::string& path, Keys choices,
                                       std::vector<Problem>& problems);

// Records a problem for every key of `obj` not in `known`, suggesting the
// closest known key when one is a likely typo.
void reject_unknown_keys(const json& obj, Keys known, const std::string& path, std::vector<Problem>& problems);

// The known key within a small edit distance of `key`, if any.
std::optional<std::string_view> closest_key(std::string_view key, Keys known);

// "a, b, c"
std::string join(Keys words);

}  // namespace ef::config::shape
