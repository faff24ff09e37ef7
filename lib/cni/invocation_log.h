// One JSON line per plugin invocation, appended to the config's logFile.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ef::cni {

struct InvocationRecord {
    std::string verb;
    std::string container_id;
    std::string pod;      // namespace/name
    std::string profile;  // "" when unfenced
    std::string outcome;  // fenced | unfenced | removed | checked | ok | error
    int64_t duration_us = 0;
    int error_code = 0;
    std::string error;
    std::vector<std::string> warnings;  // what passed but an admin should know (CHECK)
};

// Appends `r` as one line to `path` (creating its directory), holding an
// exclusive flock so concurrent plugins never interleave lines; when the line
// would take the file over `max_bytes` the file is first renamed to `path.1`
// (one rotation, the previous `.1` replaced) and the line starts a new file.
// Never throws: logging must not fail an ADD. Returns false if it could not
// write.
bool append_record(const std::string& path, const InvocationRecord& r, uint64_t max_bytes = 10u << 20);

}  // namespace ef::cni
