#include "inspect/invocations.h"

#include <charconv>
#include <chrono>
#include <ctime>

#include "cni/error.h"
#include "config/config.h"

namespace ef::inspect {
namespace {

// Every code egress-fence answers with (cni/error.h).
constexpr int kKnownCodes[] = {
    cni::kIncompatibleVersion, cni::kUnsupportedField, cni::kUnknownContainer,   cni::kInvalidEnvironment,
    cni::kIoFailure,           cni::kDecodeFailure,    cni::kInvalidConfig,      cni::kTryAgain,
    cni::kNotAvailable,        cni::kNetnsUnusable,    cni::kNftRejected,        cni::kCheckMismatch,
    cni::kNetlinkFailure,      cni::kPodSelection,     cni::kAttachmentConflict, cni::kInternal};

double now_seconds() {
    using namespace std::chrono;
    return duration_cast<duration<double>>(system_clock::now().time_since_epoch()).count();
}

// The record's "time" (cni/invocation_log.cpp: RFC 3339 in UTC with
// microseconds, 2026-12-07T10:00:00.250000Z) as Unix seconds; the time it is
// read when it is not that.
double record_time(const nlohmann::json& record) {
    auto it = record.find("time");
    if (it == record.end() || !it->is_string()) return now_seconds();
    const auto& text = it->get_ref<const std::string&>();
    // Each field's offset and length; the separators between them.
    auto field = [&text](size_t at, size_t len, int& out) {
        const char* end = text.data() + at + len;
        return text.size() >= at + len && std::from_chars(text.data() + at, end, out).ptr == end;
    };
    struct tm tm {};
    if (text.size() < 20 || text[4] != '-' || text[7] != '-' || text[10] != 'T' || text[13] != ':' || text[16] != ':' ||
        !field(0, 4, tm.tm_year) || !field(5, 2, tm.tm_mon) || !field(8, 2, tm.tm_mday) || !field(11, 2, tm.tm_hour) ||
        !field(14, 2, tm.tm_min) || !field(17, 2, tm.tm_sec))
        return now_seconds();
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    auto seconds = static_cast<double>(timegm(&tm));
    if (text[19] != '.') return seconds;
    // The fraction's digits as an integer over its power of ten (at most 9 digits: nanoseconds).
    int64_t fraction = 0, unit = 1;
    for (size_t i = 20; i < text.size() && i < 29 && text[i] >= '0' && text[i] <= '9'; ++i) {
        fraction = fraction * 10 + (text[i] - '0');
        unit *= 10;
    }
    return seconds + static_cast<double>(fraction) / static_cast<double>(unit);
}

// The `code` label: the CNI error code of a failure, "0" otherwise.
std::string code_of(const nlohmann::json& record, bool failed) {
    if (!failed) return "0";
    auto it = record.find("errorCode");
    if (it != record.end() && it->is_number_integer()) {
        auto code = it->get<int64_t>();
        // CNI codes are small numbers; anything else must not become a label value of its own.
        if (code > 0 && code < 1000) return std::to_string(code);
    }
    return "other";
}

}  // namespace

std::string_view invocation_verb(std::string_view verb) {
    for (std::string_view v : {"ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION"})
        if (verb == v) return v;
    return "other";
}

std::string_view invocation_result(std::string_view outcome) {
    for (std::string_view r : {"fenced", "unfenced", "removed", "checked", "error", "ok"})
        if (outcome == r) return r;
    if (outcome.starts_with("ok:")) return "ok";
    return "other";
}

InvocationCounts::InvocationCounts() {
    for (const char* ok : {"fenced", "unfenced"}) counts_[{"ADD", ok, "0"}] = 0;
    counts_[{"DEL", "removed", "0"}] = 0;
    counts_[{"CHECK", "checked", "0"}] = 0;
    for (int code : kKnownCodes) counts_[{"ADD", "error", std::to_string(code)}] = 0;
}

void InvocationCounts::add_line(std::string_view line) {
    nlohmann::json record;
    try {
        record = config::parse_json(line);
    } catch (const cni::Error&) {
        ++unparsed_;
        return;
    }
    if (!record.is_object() || !record.contains("verb") || !record["verb"].is_string() || !record.contains("outcome") ||
        !record["outcome"].is_string()) {
        ++unparsed_;
        return;
    }
    std::string verb(invocation_verb(record["verb"].get_ref<const std::string&>()));
    std::string result(invocation_result(record["outcome"].get_ref<const std::string&>()));
    bool failed = result == "error";
    std::string code = code_of(record, failed);
    ++counts_[{verb, result, code}];
    if (failed) {
        double& last = last_failure_[{verb, code}];
        last = std::max(last, record_time(record));
    }
}

std::vector<Family> InvocationCounts::families() const {
    Family total{"egress_fence_invocations_total",
                 "Plugin invocations on this node since this server started, read from the plugin's log (logFile): "
                 "result is the record's outcome, code its CNI error code (0 when it did not fail). Read with rate() "
                 "or increase().",
                 MetricKind::counter,
                 {}};
    for (const auto& [key, n] : counts_)
        total.samples.push_back({{{"verb", key[0]}, {"result", key[1]}, {"code", key[2]}}, static_cast<double>(n)});
    Family last{"egress_fence_last_failure_timestamp_seconds",
                "When the plugin on this node last failed a verb with this code (the log record's time, Unix "
                "seconds), since this server started.",
                MetricKind::gauge,
                {}};
    for (const auto& [key, t] : last_failure_) last.samples.push_back({{{"verb", key.first}, {"code", key.second}}, t});
    Family unparsed{"egress_fence_log_unparsed_lines_total",
                    "Lines of the plugin's log that were not an invocation record (cut at 64 KiB, not JSON).",
                    MetricKind::counter,
                    {{{}, static_cast<double>(unparsed_)}}};
    return {std::move(total), std::move(last), std::move(unparsed)};
}

}  // namespace ef::inspect
