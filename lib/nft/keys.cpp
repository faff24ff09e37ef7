// Set key layout: datatype ids, value lengths, and byte arithmetic on keys.
#include <algorithm>

#include "nft/codec.h"

namespace ef::nft {

uint32_t datatype_id(fence::FieldType t) {
    switch (t) {
        case fence::FieldType::ipv4_addr: return 7;
        case fence::FieldType::ipv6_addr: return 8;
        case fence::FieldType::inet_proto: return 12;
        case fence::FieldType::inet_service: return 13;
        case fence::FieldType::uid: return 24;
    }
    return 0;
}

size_t value_len(fence::FieldType t) {
    switch (t) {
        case fence::FieldType::ipv4_addr: return 4;
        case fence::FieldType::ipv6_addr: return 16;
        case fence::FieldType::inet_proto: return 1;
        case fence::FieldType::inet_service: return 2;
        case fence::FieldType::uid: return 4;
    }
    return 0;
}

size_t padded_len(fence::FieldType t) { return (value_len(t) + 3) / 4 * 4; }

size_t key_len(const std::vector<fence::FieldType>& key) {
    if (key.size() == 1) return value_len(key[0]);
    size_t n = 0;
    for (auto t : key) n += padded_len(t);
    return n;
}

bool is_max(const fence::Bytes& b) {
    for (uint8_t c : b)
        if (c != 0xff) return false;
    return true;
}

bool is_zero(const fence::Bytes& b) {
    for (uint8_t c : b)
        if (c != 0) return false;
    return true;
}

// Keys are big-endian, so arithmetic carries from the last byte.
fence::Bytes plus_one(fence::Bytes b) {
    for (size_t i = b.size(); i-- > 0;)
        if (++b[i] != 0) break;
    return b;
}

fence::Bytes minus_one(fence::Bytes b) {
    for (size_t i = b.size(); i-- > 0;)
        if (b[i]-- != 0) break;
    return b;
}

std::string hex(const uint8_t* p, size_t n) {
    static const char digits[] = "0123456789abcdef";
    std::string s;
    s.reserve(2 * n);
    for (size_t i = 0; i < n; ++i) {
        s.push_back(digits[p[i] >> 4]);
        s.push_back(digits[p[i] & 0xf]);
    }
    return s;
}

char* BatchBuffer::reserve(size_t max_len) {
    size_t need = used_ + max_len;
    if (buf_.size() < need) buf_.resize(std::max(need, buf_.size() * 2));
    return reinterpret_cast<char*>(buf_.data() + used_);
}

uint32_t BatchBuffer::commit() {
    const auto* nlh = reinterpret_cast<const nlmsghdr*>(buf_.data() + used_);
    used_ += NLMSG_ALIGN(nlh->nlmsg_len);
    return seq_++;
}

std::vector<uint8_t> BatchBuffer::take() && {
    buf_.resize(used_);
    return std::move(buf_);
}

}  // namespace ef::nft
