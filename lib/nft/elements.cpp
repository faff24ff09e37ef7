#include "nft/elements.h"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <optional>

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnftnl/udata.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include "cni/error.h"
#include "nft/codec.h"

namespace ef::nft {
namespace {

// nft's byteorder enum (src/datatype.h): invalid, host, big endian.
uint32_t key_byteorder(const std::vector<fence::FieldType>& key) {
    if (key.size() != 1) return 0;
    switch (key[0]) {
        case fence::FieldType::uid: return 1;
        case fence::FieldType::inet_proto: return 0;
        default: return 2;
    }
}

void put_u32_tlv(std::vector<uint8_t>& out, uint8_t type, uint32_t v) {
    // Grown, then filled: GCC 12 misreads an insert of an initializer list
    // here (-Wstringop-overflow once inlined into Release builds).
    const size_t at = out.size();
    out.resize(at + 6);
    out[at] = type;
    out[at + 1] = 4;
    std::memcpy(&out[at + 2], &v, 4);  // nftnl_udata_put_u32 stores host order
}

void put_data(nlmsghdr* nlh, uint16_t type, const uint8_t* p, size_t len) {
    nlattr* n = mnl_attr_nest_start(nlh, type);
    mnl_attr_put(nlh, NFTA_DATA_VALUE, len, p);
    mnl_attr_nest_end(nlh, n);
}

[[noreturn]] void bad(const std::string& set, const std::string& what) {
    throw cni::Error(cni::kNetlinkFailure, "malformed elements of set " + set + ": " + what);
}

// The value of NFTA_SET_ELEM_KEY / KEY_END (a nested NFTA_DATA_VALUE).
std::pair<const uint8_t*, size_t> data_value(const std::string& set, const nlattr* nest) {
    const nlattr* value = nullptr;
    for_each_nested(nest, [&](const nlattr* a) {
        if (mnl_attr_get_type(a) == NFTA_DATA_VALUE) value = a;
    });
    if (!value) bad(set, "key without a value");
    return {static_cast<const uint8_t*>(mnl_attr_get_payload(value)), mnl_attr_get_payload_len(value)};
}

}  // namespace

std::vector<uint8_t> set_userdata(const std::vector<fence::FieldType>& key) {
    std::vector<uint8_t> out;
    out.reserve(16);  // the most it holds; also spares GCC 12 a false -Warray-bounds on regrowth
    put_u32_tlv(out, NFTNL_UDATA_SET_KEYBYTEORDER, key_byteorder(key));
    if (key.size() > 1) {
        // NFTNL_UDATA_SET_KEY_TYPEOF { TYPEOF_EXPR = EXPR_CONCAT (13), TYPEOF_DATA {} }
        out.push_back(NFTNL_UDATA_SET_KEY_TYPEOF);
        out.push_back(8);
        put_u32_tlv(out, NFTNL_UDATA_SET_TYPEOF_EXPR, 13);
        out.push_back(NFTNL_UDATA_SET_TYPEOF_DATA);
        out.push_back(0);
    }
    return out;
}

// --- writing -----------------------------------------------------------------
ElementWriter::ElementWriter(const fence::Set& set)
    // The zero key is the leading end marker of a one-field interval set.
    : set_(set), concat_(set.key.size() > 1), klen_(key_len(set.key)), zero_(concat_ ? 0 : klen_, 0) {
    for (const auto& e : set.elements) check(e);
    if (set_.interval && !concat_ && !set.elements.empty())
        pending_marker_ = !is_zero(set.elements.front().fields[0].lo);
}

size_t ElementWriter::bytes_bound(const fence::Set& set) {
    // fill()'s bound for one entry; a one-field interval set sends up to two
    // per element (its end key) and a leading marker; a message per 64 KiB.
    const size_t entry_max = 4 + 8 + 2 * (8 + MNL_ALIGN(key_len(set.key))) + 12;
    const size_t entries = 2 * set.elements.size() + 1;
    return entries * entry_max + (entries * entry_max / UINT16_MAX + 1) * 1024;
}

void ElementWriter::check(const fence::Element& e) const {
    bool ok = e.fields.size() == set_.key.size();
    for (size_t i = 0; ok && i < e.fields.size(); ++i) {
        size_t n = value_len(set_.key[i]);
        ok = e.fields[i].lo.size() == n && e.fields[i].hi.size() == n;
    }
    if (!ok)
        throw cni::Error(cni::kInternal,
                         "cannot encode the fence: an element of set " + set_.name + " does not match the set's key");
}

const uint8_t* ElementWriter::concat(const fence::Element& e, bool hi, uint8_t* out) const {
    std::memset(out, 0, klen_);
    size_t off = 0;
    for (size_t i = 0; i < e.fields.size(); ++i) {
        const fence::Bytes& v = hi ? e.fields[i].hi : e.fields[i].lo;
        std::memcpy(out + off, v.data(), v.size());
        off += padded_len(set_.key[i]);
    }
    return out;
}

ElementWriter::Entry ElementWriter::next_entry() {
    if (pending_marker_) return {NFT_SET_ELEM_INTERVAL_END, zero_.data(), nullptr, klen_, false};
    if (pending_end_) return {NFT_SET_ELEM_INTERVAL_END, end_.data(), nullptr, klen_, false};
    const fence::Element& e = set_.elements[next_];
    if (concat_) {
        Entry en{0, concat(e, false, lo_buf_), nullptr, klen_, false};
        if (set_.interval) en.key_end = concat(e, true, hi_buf_);
        return en;
    }
    const fence::FieldRange& r = e.fields[0];
    return {0, r.lo.data(), nullptr, klen_, set_.interval && is_max(r.hi)};
}

void ElementWriter::advance() {
    if (pending_marker_) {
        pending_marker_ = false;
        return;
    }
    if (pending_end_) {
        pending_end_ = false;
        return;
    }
    const fence::FieldRange& r = set_.elements[next_++].fields[0];
    if (set_.interval && !concat_ && !is_max(r.hi)) {
        end_ = plus_one(r.hi);
        pending_end_ = true;
    }
}

void ElementWriter::fill(nlmsghdr* nlh, size_t max_entries) {
    // Bytes one element can take: nest, flags, key and key_end nests, udata.
    const size_t entry_max = 4 + 8 + 2 * (8 + MNL_ALIGN(klen_)) + 12;
    nlattr* list = mnl_attr_nest_start(nlh, NFTA_SET_ELEM_LIST_ELEMENTS);
    const auto* start = reinterpret_cast<const uint8_t*>(list);
    // nft numbers the element nests 1, 2, ... (the kernel ignores the type).
    uint16_t index = 0;
    for (size_t entries = 0; !done() && entries < max_entries; ++entries) {
        size_t used = reinterpret_cast<const uint8_t*>(mnl_nlmsg_get_payload_tail(nlh)) - start;
        if (used + entry_max > UINT16_MAX) break;
        Entry en = next_entry();
        nlattr* el = mnl_attr_nest_start(nlh, ++index & NLA_TYPE_MASK);
        if (en.flags) mnl_attr_put_u32(nlh, NFTA_SET_ELEM_FLAGS, htonl(en.flags));
        put_data(nlh, NFTA_SET_ELEM_KEY, en.key, en.len);
        if (en.key_end) put_data(nlh, NFTA_SET_ELEM_KEY_END, en.key_end, en.len);
        if (en.open) {
            std::vector<uint8_t> ud;
            put_u32_tlv(ud, NFTNL_UDATA_SET_ELEM_FLAGS, NFTNL_SET_ELEM_F_INTERVAL_OPEN);
            mnl_attr_put(nlh, NFTA_SET_ELEM_USERDATA, ud.size(), ud.data());
        }
        mnl_attr_nest_end(nlh, el);
        advance();
    }
    mnl_attr_nest_end(nlh, list);
}

bool reply_holds(const fence::Set& set, const fence::Element& e, const nlmsghdr* reply) {
    if (reply->nlmsg_len < NLMSG_LENGTH(sizeof(nfgenmsg))) return false;
    const nlattr* list = nullptr;
    for_each_attr(reply, sizeof(nfgenmsg), [&](const nlattr* a) {
        if (mnl_attr_get_type(a) == NFTA_SET_ELEM_LIST_ELEMENTS) list = a;
    });
    if (!list) return false;
    const nlattr* elem = nullptr;
    size_t n = 0;
    for_each_nested(list, [&](const nlattr* a) {
        elem = a;
        ++n;
    });
    if (n != 1 || e.fields.size() != set.key.size()) return false;
    const nlattr *key = nullptr, *key_end = nullptr;
    for_each_nested(elem, [&](const nlattr* a) {
        if (mnl_attr_get_type(a) == NFTA_SET_ELEM_KEY) key = a;
        if (mnl_attr_get_type(a) == NFTA_SET_ELEM_KEY_END) key_end = a;
    });
    const bool concat = set.key.size() > 1;
    // The key (the fields' lo, or hi for the end key), each field padded
    // to 4 bytes in a concatenation.
    auto same = [&](const nlattr* nest, bool hi) {
        if (!nest) return false;
        const nlattr* value = nullptr;
        for_each_nested(nest, [&](const nlattr* a) {
            if (mnl_attr_get_type(a) == NFTA_DATA_VALUE) value = a;
        });
        if (!value || mnl_attr_get_payload_len(value) != key_len(set.key)) return false;
        const auto* p = static_cast<const uint8_t*>(mnl_attr_get_payload(value));
        size_t off = 0;
        for (size_t i = 0; i < set.key.size(); ++i) {
            const fence::Bytes& v = hi ? e.fields[i].hi : e.fields[i].lo;
            const size_t width = concat ? padded_len(set.key[i]) : v.size();
            if (std::memcmp(p + off, v.data(), v.size()) != 0) return false;
            for (size_t pad = v.size(); pad < width; ++pad)
                if (p[off + pad] != 0) return false;
            off += width;
        }
        return true;
    };
    if (!same(key, false)) return false;
    if (set.interval) return same(key_end, true);
    return !key_end;
}

std::string element_at(const fence::Ruleset& rs, const nlmsghdr* msg, uint32_t offset) {
    if (msg->nlmsg_len < NLMSG_LENGTH(sizeof(nfgenmsg)) || offset >= msg->nlmsg_len) return "";
    std::string name;
    const nlattr* list = nullptr;
    for_each_attr(msg, sizeof(nfgenmsg), [&](const nlattr* a) {
        if (mnl_attr_get_type(a) == NFTA_SET_ELEM_LIST_SET && mnl_attr_validate(a, MNL_TYPE_NUL_STRING) == 0)
            name = mnl_attr_get_str(a);
        if (mnl_attr_get_type(a) == NFTA_SET_ELEM_LIST_ELEMENTS) list = a;
    });
    auto set = std::find_if(rs.sets.begin(), rs.sets.end(), [&](const fence::Set& s) { return s.name == name; });
    if (set == rs.sets.end() || !list) return "";
    const nlattr* hit = nullptr;
    for_each_nested(list, [&](const nlattr* el) {
        if (reinterpret_cast<const char*>(el) - reinterpret_cast<const char*>(msg) == static_cast<ptrdiff_t>(offset))
            hit = el;
    });
    if (!hit) return "";
    uint32_t flags = 0;
    std::pair<const uint8_t*, size_t> key{nullptr, 0}, key_end{nullptr, 0};
    for_each_nested(hit, [&](const nlattr* a) {
        switch (mnl_attr_get_type(a)) {
            case NFTA_SET_ELEM_FLAGS:
                if (mnl_attr_validate(a, MNL_TYPE_U32) == 0) flags = ntohl(mnl_attr_get_u32(a));
                break;
            case NFTA_SET_ELEM_KEY: key = data_value(name, a); break;
            case NFTA_SET_ELEM_KEY_END: key_end = data_value(name, a); break;
            default: break;
        }
    });
    const size_t klen = key_len(set->key);
    if (!key.first || key.second != klen || (key_end.first && key_end.second != klen)) return "";
    const bool concat = set->key.size() > 1;
    const uint8_t* hi = key_end.first ? key_end.first : key.first;
    fence::Element e;
    size_t off = 0;
    for (auto t : set->key) {
        size_t n = value_len(t);
        e.fields.push_back({fence::Bytes(key.first + off, key.first + off + n), fence::Bytes(hi + off, hi + off + n)});
        off += concat ? padded_len(t) : n;
    }
    // Appended, not "`" + string: GCC 12's -Wrestrict misreads that pattern at -O2.
    std::string text = "`";
    text += fence::to_nft_text(*set, e);
    text += '`';
    // A one-field interval set's end key: one past the interval's last value.
    if (flags & NFT_SET_ELEM_INTERVAL_END) text += " (where an interval ends)";
    return text;
}

// --- reading -----------------------------------------------------------------
ElementReader::ElementReader(const fence::Set& shape)
    : name_(shape.name),
      key_(shape.key),
      interval_(shape.interval),
      concat_(shape.key.size() > 1),
      klen_(key_len(shape.key)) {}

void ElementReader::add_list(const nlattr* elems) {
    if (key_.empty()) return;  // a set of a type we do not model: no elements
    for_each_nested(elems, [&](const nlattr* a) {
        add_one(a);  // nft numbers the nests; the kernel dumps NFTA_LIST_ELEM
    });
}

void ElementReader::add_one(const nlattr* elem) {
    uint32_t flags = 0;
    const nlattr *key = nullptr, *key_end = nullptr;
    for_each_nested(elem, [&](const nlattr* a) {
        switch (mnl_attr_get_type(a)) {
            case NFTA_SET_ELEM_FLAGS:
                if (mnl_attr_validate(a, MNL_TYPE_U32) < 0) bad(name_, "bad flags");
                flags = ntohl(mnl_attr_get_u32(a));
                break;
            case NFTA_SET_ELEM_KEY: key = a; break;
            case NFTA_SET_ELEM_KEY_END: key_end = a; break;
            default: break;
        }
    });
    if (!key) bad(name_, "element without a key");
    auto [k, klen] = data_value(name_, key);
    if (klen != klen_) bad(name_, "key of " + std::to_string(klen) + " bytes, expected " + std::to_string(klen_));
    if (interval_ && !concat_) {
        bounds_.emplace_back(fence::Bytes(k, k + klen), (flags & NFT_SET_ELEM_INTERVAL_END) != 0);
        return;
    }
    const uint8_t* hi = k;
    if (key_end) {
        auto [ke, kelen] = data_value(name_, key_end);
        if (kelen != klen_) bad(name_, "end key of " + std::to_string(kelen) + " bytes");
        hi = ke;
    }
    if (!interval_ && hi == k) {
        // One value per field: kept as bytes, put in order by finish().
        size_t off = 0;
        for (auto t : key_) {
            keys_.insert(keys_.end(), k + off, k + off + value_len(t));
            off += concat_ ? padded_len(t) : value_len(t);
        }
        return;
    }
    elements_.push_back(split(k, hi));
}

fence::Element ElementReader::split(const uint8_t* lo, const uint8_t* hi) const {
    fence::Element e;
    size_t off = 0;
    for (auto t : key_) {
        size_t n = value_len(t);
        e.fields.push_back({fence::Bytes(lo + off, lo + off + n), fence::Bytes(hi + off, hi + off + n)});
        off += concat_ ? padded_len(t) : n;
    }
    return e;
}

std::vector<fence::Element> ElementReader::finish() {
    // rbtree: an interval is a start key up to the next end key (exclusive);
    // at equal keys the end of one interval comes before the next start.
    std::sort(bounds_.begin(), bounds_.end(), [](const auto& a, const auto& b) {
        return a.first != b.first ? a.first < b.first : a.second > b.second;
    });
    std::optional<fence::Bytes> open;
    auto close = [&](const fence::Bytes& end_exclusive) {
        fence::Bytes hi = minus_one(end_exclusive);
        elements_.push_back({{fence::FieldRange{*open, hi}}});
        open.reset();
    };
    for (const auto& [key, is_end] : bounds_) {
        if (is_end) {
            if (open && *open < key) close(key);
            continue;  // the leading marker, or a stray end
        }
        if (open && *open < key) close(key);
        open = key;
    }
    if (open) elements_.push_back({{fence::FieldRange{*open, fence::Bytes(klen_, 0xff)}}});
    bounds_.clear();
    if (!interval_) {
        fence::Set s{name_, key_, false, {}, 0};
        size_t len = 0;
        for (auto t : key_) len += value_len(t);
        const size_t n = len ? keys_.size() / len : 0;
        std::vector<uint32_t> order = fence::key_order(keys_.data(), n, len, fence::sorts_from_last_byte(s));
        s.elements.reserve(n + elements_.size());
        const uint8_t* prev = nullptr;
        for (uint32_t i : order) {
            const uint8_t* k = keys_.data() + size_t{i} * len;
            if (prev && std::memcmp(prev, k, len) == 0) continue;
            s.elements.push_back(fence::element_of(key_, k));
            prev = k;
        }
        keys_ = {};
        // A hash element with an end key (not one nft sends): sorted in.
        if (!elements_.empty()) {
            s.elements.insert(s.elements.end(), elements_.begin(), elements_.end());
            elements_ = {};
            fence::sort_elements(s);
        }
        return std::move(s.elements);
    }
    // Dumps come in ascending or descending order: avoid a full sort.
    if (std::is_sorted(elements_.rbegin(), elements_.rend())) std::reverse(elements_.begin(), elements_.end());
    if (!std::is_sorted(elements_.begin(), elements_.end())) std::sort(elements_.begin(), elements_.end());
    elements_.erase(std::unique(elements_.begin(), elements_.end()), elements_.end());
    return std::move(elements_);
}

}  // namespace ef::nft
