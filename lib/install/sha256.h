// SHA-256 (FIPS 180-4), for content digests the installer records and compares.
#pragma once

#include <string>
#include <string_view>

namespace ef::install {

// Lower-case hex SHA-256 of `data`.
std::string sha256_hex(std::string_view data);

}  // namespace ef::install
