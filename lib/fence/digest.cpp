// digest(): SHA-256 of the canonical body text, truncated to 128 bits (it
// detects drift; it is not a signature: a pod with NET_ADMIN could rewrite it).
// The text is hashed as it is written, never held whole, and is the text
// to_nft_text prints for the ruleset without its metadata and with counters
// at zero: the value stays what earlier versions stored in their tables.
// SHA-256 itself is nettle's (Debian's nettle-dev), not our own: crypto code
// is reviewed once, where many projects use it.
#include <nettle/sha2.h>

#include <array>
#include <cstdint>
#include <string>

#include "fence/ruleset.h"
#include "fence/text_out.h"

namespace ef::fence {

namespace {

std::string hex(const std::array<uint8_t, SHA256_DIGEST_SIZE>& sum) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    out.reserve(2 * sum.size());
    for (uint8_t byte : sum) {
        out.push_back(kHex[byte >> 4]);
        out.push_back(kHex[byte & 0xf]);
    }
    return out;
}

// Feeds what is written to a SHA-256 context.
class HashOut final : public TextOut {
  public:
    HashOut() { sha256_init(&ctx_); }
    std::string hex_digest() {
        flush();
        std::array<uint8_t, SHA256_DIGEST_SIZE> sum{};
        sha256_digest(&ctx_, sum.size(), sum.data());
        return hex(sum);
    }

  private:
    void consume(const char* p, size_t n) override { sha256_update(&ctx_, n, reinterpret_cast<const uint8_t*>(p)); }
    sha256_ctx ctx_{};
};

}  // namespace

std::string sha256_hex(const std::string& data) {
    sha256_ctx ctx;
    sha256_init(&ctx);
    sha256_update(&ctx, data.size(), reinterpret_cast<const uint8_t*>(data.data()));
    std::array<uint8_t, SHA256_DIGEST_SIZE> sum{};
    sha256_digest(&ctx, sum.size(), sum.data());
    return hex(sum);
}

std::string digest(const Ruleset& rs) {
    HashOut h;
    write_nft_text(h, rs, /*with_metadata=*/false, /*counter_values=*/false);
    return h.hex_digest().substr(0, 32);
}

}  // namespace ef::fence
