// One SHA-256 in the project: the fence's digest and the installer's content
// digests use the same implementation (lib/fence/digest.cpp).
#include "install/sha256.h"

#include "fence/ruleset.h"

namespace ef::install {

std::string sha256_hex(std::string_view data) { return fence::sha256_hex(std::string(data)); }

}  // namespace ef::install
