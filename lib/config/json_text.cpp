// parse_json() and parse_stdin_json(): JSON text -> document, under the size
// limit, with simdjson (json_read.h).
#include "cni/error.h"
#include "config/config.h"
#include "config/json_read.h"

namespace ef::config {

namespace {

void check_size(std::string_view bytes) {
    if (bytes.size() > kMaxInputBytes)
        throw cni::Error(cni::kDecodeFailure, "input is larger than the limit of " + std::to_string(kMaxInputBytes) +
                                                  " bytes (" + std::to_string(kMaxInputBytes >> 20) + " MiB)");
}

}  // namespace

nlohmann::json parse_json(std::string_view bytes) {
    check_size(bytes);
    return read_json(bytes);
}

nlohmann::json parse_stdin_json(std::string_view bytes, DecodedAllow& allow) {
    check_size(bytes);
    return read_stdin_json(bytes, allow);
}

nlohmann::json parse_stdin_json(const JsonText& bytes, DecodedAllow& allow) {
    check_size(bytes.text());
    return read_stdin_json(bytes, allow);
}

}  // namespace ef::config
