#include "fence/ruleset.h"

#include <algorithm>
#include <array>
#include <cstring>

namespace ef::fence {

size_t field_len(FieldType t) {
    switch (t) {
        case FieldType::ipv4_addr: return 4;
        case FieldType::ipv6_addr: return 16;
        case FieldType::inet_proto: return 1;
        case FieldType::inet_service: return 2;
        case FieldType::uid: return 4;
    }
    return 0;
}

const char* field_type_name(FieldType t) {
    switch (t) {
        case FieldType::ipv4_addr: return "ipv4_addr";
        case FieldType::ipv6_addr: return "ipv6_addr";
        case FieldType::inet_proto: return "inet_proto";
        case FieldType::inet_service: return "inet_service";
        case FieldType::uid: return "uid";
    }
    return "?";
}

namespace {

// nft's order for a concatenated hash set (mergesort.c: the fields' bytes
// concatenated, then read as a host-endian number): the last byte weighs most.
int compare_from_last_byte(const Element& a, const Element& b) {
    if (a.fields.size() != b.fields.size()) return a.fields.size() < b.fields.size() ? -1 : 1;
    for (size_t i = a.fields.size(); i-- > 0;) {
        const Bytes& x = a.fields[i].lo;
        const Bytes& y = b.fields[i].lo;
        if (x.size() != y.size()) return x.size() < y.size() ? -1 : 1;
        for (size_t k = x.size(); k-- > 0;)
            if (x[k] != y[k]) return x[k] < y[k] ? -1 : 1;
    }
    return 0;
}

}  // namespace

bool canonical_less(const Set& s, const Element& a, const Element& b) {
    if (!sorts_from_last_byte(s)) return a < b;
    int c = compare_from_last_byte(a, b);
    return c != 0 ? c < 0 : a < b;
}

std::vector<uint32_t> key_order(const uint8_t* keys, size_t n, size_t len, bool from_last_byte) {
    std::vector<uint32_t> order(n), next(n);
    for (size_t i = 0; i < n; ++i) order[i] = static_cast<uint32_t>(i);
    // Least significant byte first; each pass is stable.
    for (size_t pass = 0; pass < len; ++pass) {
        const size_t at = from_last_byte ? pass : len - 1 - pass;
        std::array<size_t, 257> start{};
        for (size_t i = 0; i < n; ++i) ++start[keys[i * len + at] + 1];
        if (std::any_of(start.begin() + 1, start.end(), [n](size_t c) { return c == n; })) continue;  // one value
        for (size_t b = 1; b < start.size(); ++b) start[b] += start[b - 1];
        for (uint32_t i : order) next[start[keys[i * len + at]]++] = i;
        order.swap(next);
    }
    return order;
}

Element element_of(const std::vector<FieldType>& key, const uint8_t* bytes) {
    Element e;
    for (FieldType t : key) {
        Bytes v(bytes, bytes + field_len(t));
        e.fields.push_back({v, v});
        bytes += field_len(t);
    }
    return e;
}

namespace {

// The concatenated single values of every element, when each has one value
// per key field of its type's length (every element of a set without
// ranges); false otherwise.
bool flat_keys(const Set& s, size_t& len, std::vector<uint8_t>& out) {
    len = 0;
    for (FieldType t : s.key) len += field_len(t);
    if (len == 0) return false;
    out.resize(s.elements.size() * len);
    uint8_t* p = out.data();
    for (const auto& e : s.elements) {
        if (e.fields.size() != s.key.size()) return false;
        for (size_t i = 0; i < e.fields.size(); ++i) {
            const FieldRange& f = e.fields[i];
            if (f.lo.size() != field_len(s.key[i]) || !(f.lo == f.hi)) return false;
            std::memcpy(p, f.lo.data(), f.lo.size());
            p += f.lo.size();
        }
    }
    return true;
}

}  // namespace

void sort_elements(Set& s) {
    auto& v = s.elements;
    size_t len = 0;
    std::vector<uint8_t> keys;
    if (flat_keys(s, len, keys)) {
        // Single values only: in either order, the order of the concatenated
        // bytes (from the first byte, or from the last).
        std::vector<uint32_t> order = key_order(keys.data(), v.size(), len, sorts_from_last_byte(s));
        keys = {};
        // Put in place cycle by cycle: no second vector of the elements.
        for (size_t j = 0; j < order.size(); ++j) {
            if (order[j] == j) continue;
            const Element held = v[j];
            size_t at = j;
            for (;;) {
                size_t from = order[at];
                order[at] = static_cast<uint32_t>(at);
                if (from == j) {
                    v[at] = held;
                    break;
                }
                v[at] = v[from];
                at = from;
            }
        }
        v.erase(std::unique(v.begin(), v.end()), v.end());
        return;
    }
    if (sorts_from_last_byte(s)) {
        std::sort(v.begin(), v.end(), [](const Element& a, const Element& b) {
            int c = compare_from_last_byte(a, b);
            return c != 0 ? c < 0 : a < b;
        });
    } else {
        std::sort(v.begin(), v.end());
    }
    v.erase(std::unique(v.begin(), v.end()), v.end());
}

}  // namespace ef::fence
