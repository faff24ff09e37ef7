// Internal to lib/fence: the nft text form written piece by piece into a
// sink, so that `render` gets it as a string and digest() hashes the same
// bytes as they are produced, without ever holding the whole text (at
// 100,000 set elements it is several MiB).
#pragma once

#include <charconv>
#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>

#include "fence/ruleset.h"

namespace ef::fence {

// A buffered byte sink with ostream-like `<<` for text and decimal numbers.
class TextOut {
  public:
    TextOut() = default;
    TextOut(const TextOut&) = delete;
    TextOut& operator=(const TextOut&) = delete;
    virtual ~TextOut() = default;

    TextOut& operator<<(std::string_view s) {
        if (s.size() > sizeof buf_ - n_) {
            flush();
            if (s.size() >= sizeof buf_) {
                consume(s.data(), s.size());
                return *this;
            }
        }
        std::memcpy(buf_ + n_, s.data(), s.size());
        n_ += s.size();
        return *this;
    }
    TextOut& operator<<(const char* s) { return *this << std::string_view(s); }
    TextOut& operator<<(const std::string& s) { return *this << std::string_view(s); }
    TextOut& operator<<(char c) { return *this << std::string_view(&c, 1); }
    // Integers in decimal, as std::ostream writes them in the C locale.
    template <class T>
    requires(std::is_integral_v<T> && !std::is_same_v<T, char> && !std::is_same_v<T, bool>) TextOut& operator<<(T v) {
        char b[24];
        auto r = std::to_chars(b, b + sizeof b, v);
        return *this << std::string_view(b, static_cast<size_t>(r.ptr - b));
    }
    // Hands everything written so far to consume(). Call before reading
    // the sink's result.
    void flush() {
        if (n_) consume(buf_, n_);
        n_ = 0;
    }

  protected:
    virtual void consume(const char* p, size_t n) = 0;

  private:
    char buf_[4096];
    size_t n_ = 0;
};

// Appends to a string.
class StringOut final : public TextOut {
  public:
    explicit StringOut(std::string& s) : s_(s) {}
    StringOut(const StringOut&) = delete;
    StringOut& operator=(const StringOut&) = delete;
    StringOut(StringOut&&) = delete;
    StringOut& operator=(StringOut&&) = delete;
    ~StringOut() override { flush(); }

  private:
    void consume(const char* p, size_t n) override { s_.append(p, n); }
    std::string& s_;
};

// The text inet_ntop() gives for an IPv4 (4 bytes) or IPv6 (16 bytes)
// address, into `out` (kAddressTextMax bytes); returns its length, no NUL.
// Written here: glibc's inet_ntop formats with sprintf, which was most of
// what digest() cost at 100,000 set elements (tests compare the two).
inline constexpr size_t kAddressTextMax = 46;
size_t address_text(const Bytes& b, char* out);

// to_nft_text(rs, with_metadata) into `o`; counters' values written as 0
// when `counter_values` is false (what digest() hashes).
void write_nft_text(TextOut& o, const Ruleset& rs, bool with_metadata, bool counter_values = true);
// to_nft_text(set, e) into `o`.
void write_element(TextOut& o, const Set& set, const Element& e);

}  // namespace ef::fence
