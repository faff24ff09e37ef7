// digest(): SHA-256 of the canonical body text, truncated to 128 bits (it
// detects drift; it is not a signature: a pod with NET_ADMIN could rewrite it).
// The text is hashed as it is written, never held whole, and is the text
// to_nft_text prints for the ruleset without its metadata and with counters
// at zero: the value stays what earlier versions stored in their tables.
// SHA-256 itself is nettle's (Debian's nettle-dev), not our own: crypto code
// is reviewed once, where many projects use it.
#include <nettle/sha2.h>

#include <array>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

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

// Feeds what is written to a SHA-256 context. A large text (100,000 set
// elements are ~3.6 MB) is hashed on a second thread, block by block, while
// this one writes the next block: the digest then costs about what writing
// the text costs, not that plus hashing it.
class HashOut final : public TextOut {
  public:
    HashOut() { sha256_init(&ctx_); }
    HashOut(const HashOut&) = delete;
    HashOut& operator=(const HashOut&) = delete;
    ~HashOut() override { stop(); }
    std::string hex_digest() {
        flush();
        stop();
        update(block_);
        std::array<uint8_t, SHA256_DIGEST_SIZE> sum{};
        sha256_digest(&ctx_, sum.size(), sum.data());
        return hex(sum);
    }

  private:
    static constexpr size_t kBlock = size_t{256} << 10;

    void update(const std::string& b) { sha256_update(&ctx_, b.size(), reinterpret_cast<const uint8_t*>(b.data())); }

    void consume(const char* p, size_t n) override {
        block_.append(p, n);
        if (block_.size() < kBlock) return;
        if (!worker_.joinable()) worker_ = std::thread([this] { hash_handed_blocks(); });
        std::unique_lock lock(mu_);
        cv_.wait(lock, [this] { return !handed_; });
        handed_block_.swap(block_);
        handed_ = true;
        lock.unlock();
        cv_.notify_all();
        block_.clear();
    }

    void hash_handed_blocks() {
        std::unique_lock lock(mu_);
        for (;;) {
            cv_.wait(lock, [this] { return handed_ || done_; });
            if (!handed_) return;
            lock.unlock();
            update(handed_block_);
            lock.lock();
            handed_ = false;
            cv_.notify_all();
        }
    }

    // Waits for the blocks handed over to be hashed, and for the thread.
    void stop() {
        if (!worker_.joinable()) return;
        {
            std::unique_lock lock(mu_);
            cv_.wait(lock, [this] { return !handed_; });
            done_ = true;
        }
        cv_.notify_all();
        worker_.join();
    }

    sha256_ctx ctx_{};
    std::string block_, handed_block_;
    std::thread worker_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool handed_ = false, done_ = false;
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
