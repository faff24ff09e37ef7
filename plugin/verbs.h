// One function per CNI verb. Each takes the parsed invocation, does its work,
// and returns what goes to stdout; errors are thrown as cni::Error.
#pragma once

#include <string>

#include "cni/invocation_log.h"
#include "cni/protocol.h"
#include "config/config.h"

namespace ef::plugin {

struct Invocation {
    cni::Env env;
    config::NetConf conf;
    cni::Args args;
    config::Pod pod;
    cni::InvocationRecord* record;  // filled in for the log line
};

std::string cmd_add(const Invocation& in);
// Reads only in.env (CNI_NETNS) and fills in.record: DEL must succeed
// whatever the config says, so main hands it no validated config.
std::string cmd_del(const Invocation& in);
std::string cmd_check(const Invocation& in);
std::string cmd_status(const Invocation& in);
std::string cmd_gc(const Invocation& in);

}  // namespace ef::plugin
