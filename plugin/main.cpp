// egress-fence: the CNI plugin. Reads the CNI environment and stdin, runs the
// verb, prints its result or a CNI error object. Nothing else lives here.
#include <chrono>
#include <iostream>

#include "cni/stdin.h"
#include "cni/version.h"
#include "config/config.h"
#include "config/envelope.h"
#include "config/json_read.h"
#include "plugin/verbs.h"

using namespace ef;

namespace {

// Every verb but DEL: the whole config, validated, and the pod it is for.
void read_invocation(plugin::Invocation& in, const config::JsonText& input) {
    in.conf = config::parse_netconf(input);
    in.args = cni::parse_args(in.env.args);
    in.pod = config::Pod{in.args.pod_namespace,
                         in.args.pod_name,
                         in.args.infra_container_id.empty() ? in.env.container_id : in.args.infra_container_id,
                         in.args.pod_uid,
                         in.conf.pod_annotations,
                         in.conf.annotations_delivered};
}

// DEL: nothing but the environment is needed, and nothing else may fail it
// (DESIGN.md "CNI verbs"); what could not be read is logged as a warning.
void read_teardown(plugin::Invocation& in, const config::Envelope& envelope) {
    for (const auto& p : envelope.problems) in.record->warnings.push_back("config ignored by DEL: " + p);
    try {
        in.args = cni::parse_args(in.env.args);
    } catch (const cni::Error& e) {
        in.record->warnings.push_back("CNI_ARGS ignored by DEL: " + e.msg);
    }
    in.pod.namespace_ = in.args.pod_namespace;
    in.pod.name = in.args.pod_name;
}

std::string dispatch(const std::string& verb, const plugin::Invocation& in) {
    if (verb == "ADD") return plugin::cmd_add(in);
    if (verb == "DEL") return plugin::cmd_del(in);
    if (verb == "CHECK") return plugin::cmd_check(in);
    if (verb == "STATUS") return plugin::cmd_status(in);
    return plugin::cmd_gc(in);
}

}  // namespace

int main() {
    auto start = std::chrono::steady_clock::now();
    cni::keep_heap();
    cni::InvocationRecord record;
    std::string version(cni::kSupportedVersions.back()), log_file, log_level = "info";
    int rc = 0;
    try {
        plugin::Invocation in{cni::read_env(), {}, {}, {}, &record};
        record.verb = in.env.command;
        record.container_id = in.env.container_id;
        const std::string& verb = in.env.command;
        if (verb.empty()) throw cni::Error(cni::kInvalidEnvironment, "CNI_COMMAND is not set");
        // One byte more than the config parser accepts, so it can say "too
        // large" without this process holding arbitrary amounts of input.
        const cni::StdinBytes input = cni::read_stdin(config::kMaxInputBytes + 1, config::kJsonPadding);
        cni::prepare_heap(input.size);
        {
            // Parsed once, for the envelope and the config; the parser's
            // memory is gone before the fence is compiled.
            const config::JsonText parsed(input.view(), /*padded=*/true);
            // Read from any input, valid or not: the version an answer is given
            // in and where this invocation is logged.
            const config::Envelope envelope = config::read_envelope(parsed);
            if (!envelope.cni_version.empty()) version = envelope.cni_version;
            log_file = envelope.log_file;
            log_level = envelope.log_level;
            if (verb == "VERSION") {
                std::cout << cni::version_json(version) << "\n";
                return 0;
            }
            if (verb != "ADD" && verb != "DEL" && verb != "CHECK" && verb != "STATUS" && verb != "GC")
                throw cni::Error(cni::kInvalidEnvironment, "CNI_COMMAND \"" + verb + "\" is not a CNI verb",
                                 "expected ADD, DEL, CHECK, STATUS, GC or VERSION");
            if (verb == "DEL") read_teardown(in, envelope);
            else read_invocation(in, parsed);
        }
        record.pod = in.pod.namespace_ + "/" + in.pod.name;
        std::string out = dispatch(verb, in);
        if (!out.empty()) std::cout << out << "\n";
        // The spec gives a verb that succeeds no channel for warnings: stderr
        // (libcni passes it on) and the log file carry them.
        for (const auto& w : record.warnings) std::cerr << "egress-fence: warning: " << w << "\n";
    } catch (const cni::Error& e) {
        std::cout << cni::error_json(e, version) << "\n";
        std::cerr << "egress-fence: " << e.msg << (e.details.empty() ? "" : "\n" + e.details) << "\n";
        record.outcome = "error";
        record.error_code = e.code;
        record.error = e.msg;
        rc = 1;
    } catch (const std::exception& e) {
        cni::Error internal(cni::kInternal, std::string("internal error: ") + e.what(), "please report this");
        std::cout << cni::error_json(internal, version) << "\n";
        std::cerr << "egress-fence: " << internal.msg << "\n";
        record.outcome = "error";
        record.error_code = internal.code;
        record.error = internal.msg;
        rc = 1;
    }
    record.duration_us =
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start).count();
    // info and debug log every invocation; warn adds those with warnings; error only failures.
    bool warned = !record.warnings.empty() && log_level != "error";
    if (rc != 0 || warned || log_level == "info" || log_level == "debug") cni::append_record(log_file, record);
    std::cout.flush();
    return rc;
}
