// Table userdata: who the table belongs to. nft only interprets TLV type 0
// (comment) of a table's userdata and skips the rest, so our own types (from
// 0x40) stay invisible in `nft list` while surviving in the kernel.
#include <algorithm>
#include <array>
#include <cstring>

#include <libnftnl/udata.h>
#include <linux/netfilter/nf_tables.h>

#include "cni/error.h"
#include "nft/codec.h"
#include "nft/nft.h"

namespace ef::nft {
namespace {

constexpr uint8_t kFirstType = 0x40;
constexpr size_t kTlvHeader = 2;   // type, length
constexpr size_t kMaxValue = 255;  // a TLV's length is one byte

using Field = std::string fence::Metadata::*;
// TLV order and type (kFirstType + index); never reorder, only append.
constexpr std::array<Field, 7> kFields = {
    &fence::Metadata::plugin_version, &fence::Metadata::profile,      &fence::Metadata::pod_namespace,
    &fence::Metadata::pod_name,       &fence::Metadata::container_id, &fence::Metadata::digest,
    &fence::Metadata::annotated_uid,
};
// Which values give way first when the metadata does not fit.
constexpr std::array<Field, 5> kTruncationOrder = {
    &fence::Metadata::pod_name,      &fence::Metadata::container_id,   &fence::Metadata::profile,
    &fence::Metadata::pod_namespace, &fence::Metadata::plugin_version,
};

size_t encoded_size(const fence::Metadata& m) {
    size_t n = 0;
    for (Field f : kFields) n += kTlvHeader + (m.*f).size();
    return n;
}

// Cuts `s` to `len` bytes (len >= 1) ending in '~'.
void truncate_to(std::string& s, size_t len) {
    if (s.size() <= len) return;
    s.resize(len - 1);
    s.push_back('~');
}

}  // namespace

fence::Metadata fit_metadata(const fence::Metadata& in) {
    fence::Metadata m = in;
    for (Field f : kFields) truncate_to(m.*f, kMaxValue);
    for (Field f : kTruncationOrder) {
        size_t size = encoded_size(m);
        if (size <= NFT_USERDATA_MAXLEN) break;
        std::string& v = m.*f;
        size_t excess = size - NFT_USERDATA_MAXLEN;
        truncate_to(v, v.size() > excess + 1 ? v.size() - excess : 1);
    }
    // The digest is 32 hex chars in practice; a caller passing absurd values
    // in it gets it cut too rather than a table the kernel refuses.
    if (size_t size = encoded_size(m); size > NFT_USERDATA_MAXLEN)
        truncate_to(m.digest, std::max<size_t>(1, m.digest.size() - (size - NFT_USERDATA_MAXLEN)));
    return m;
}

std::vector<uint8_t> encode_metadata(const fence::Metadata& in) {
    fence::Metadata m = fit_metadata(in);
    std::vector<uint8_t> out;
    out.reserve(encoded_size(m));
    for (size_t i = 0; i < kFields.size(); ++i) {
        const std::string& v = m.*kFields[i];
        out.push_back(static_cast<uint8_t>(kFirstType + i));
        out.push_back(static_cast<uint8_t>(v.size()));
        out.insert(out.end(), v.begin(), v.end());
    }
    return out;
}

fence::Metadata decode_metadata(const uint8_t* data, size_t len) {
    fence::Metadata m;
    size_t off = 0;
    while (off < len) {
        if (len - off < kTlvHeader) throw cni::Error(cni::kNetlinkFailure, "table userdata is truncated");
        uint8_t type = data[off];
        uint8_t vlen = data[off + 1];
        off += kTlvHeader;
        if (len - off < vlen) throw cni::Error(cni::kNetlinkFailure, "table userdata is truncated");
        // Other types (nft's comment, future fields) are skipped on purpose.
        if (type >= kFirstType && type - kFirstType < static_cast<int>(kFields.size()))
            (m.*kFields[type - kFirstType]).assign(reinterpret_cast<const char*>(data + off), vlen);
        off += vlen;
    }
    return m;
}

}  // namespace ef::nft
