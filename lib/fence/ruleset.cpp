#include "fence/ruleset.h"

#include <algorithm>

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

void sort_elements(Set& s) {
    auto& v = s.elements;
    if (!s.interval && s.key.size() > 1) {
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
