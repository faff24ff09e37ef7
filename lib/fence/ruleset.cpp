#include "fence/ruleset.h"

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

}  // namespace ef::fence
