// digest(): SHA-256 of the canonical body text, truncated to 128 bits (it
// detects drift; it is not a signature: a pod with NET_ADMIN could rewrite it).
// SHA-256 itself is nettle's (Debian's nettle-dev), not our own: crypto code
// is reviewed once, where many projects use it.
#include <nettle/sha2.h>

#include <array>
#include <cstdint>
#include <string>

#include "fence/ruleset.h"

namespace ef::fence {

std::string sha256_hex(const std::string& data) {
    sha256_ctx ctx;
    sha256_init(&ctx);
    sha256_update(&ctx, data.size(), reinterpret_cast<const uint8_t*>(data.data()));
    std::array<uint8_t, SHA256_DIGEST_SIZE> sum{};
    sha256_digest(&ctx, sum.size(), sum.data());
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    out.reserve(2 * sum.size());
    for (uint8_t byte : sum) {
        out.push_back(kHex[byte >> 4]);
        out.push_back(kHex[byte & 0xf]);
    }
    return out;
}

std::string digest(const Ruleset& rs) {
    Ruleset body = rs;
    body.meta = {};
    for (auto& c : body.counters) c.packets = c.bytes = 0;
    if (body.netdev)
        for (auto& c : body.netdev->counters) c.packets = c.bytes = 0;
    return sha256_hex(to_nft_text(body)).substr(0, 32);
}

}  // namespace ef::fence
