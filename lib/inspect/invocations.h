// Plugin outcomes as counters, from the node's plugin log (the lines
// cni::append_record writes, which the DaemonSet's main container follows):
// how many ADD/DEL/CHECK/... calls ended how, with which CNI error code, and
// when each code last failed. Counts start at zero when the counting process
// starts; the log's rotation does not reset them (the follower reads across
// it), a restart does, which rate() and increase() expect of any counter.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "inspect/families.h"

namespace ef::inspect {

// The `verb` label of a log record's verb: ADD, DEL, CHECK, STATUS, GC,
// VERSION, or "other" (a CNI_COMMAND that is none of them must not become a
// label value of its own).
std::string_view invocation_verb(std::string_view verb);

// The `result` label of a log record's outcome: fenced, unfenced, removed,
// checked, error; "ok" for ok and GC's "ok: nothing to collect (...)"; "other"
// for anything else.
std::string_view invocation_result(std::string_view outcome);

class InvocationCounts {
  public:
    // With the series an alert must see go from 0 to 1 already at 0: ADD's
    // successes and every error code egress-fence has (cni/error.h), DEL's
    // and CHECK's successes. (A series born at 1 has no earlier sample, and
    // increase() over it stays 0: the first failure would be missed.)
    InvocationCounts();

    // One line of the log, without its newline. A line that is not an
    // invocation record (not JSON, cut at the follower's line limit, no verb
    // or outcome) is counted as unparsed.
    void add_line(std::string_view line);

    // egress_fence_invocations_total{verb,result,code},
    // egress_fence_last_failure_timestamp_seconds{verb,code} (the record's
    // time, Unix seconds) and egress_fence_log_unparsed_lines_total.
    std::vector<Family> families() const;

  private:
    std::map<std::array<std::string, 3>, uint64_t> counts_;               // verb, result, code
    std::map<std::pair<std::string, std::string>, double> last_failure_;  // verb, code
    uint64_t unparsed_ = 0;
};

}  // namespace ef::inspect
