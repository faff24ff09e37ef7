#include "config_file.h"

#include <cstring>
#include <fstream>
#include <sstream>

#include "cni/error.h"

namespace ef::ctl {

nlohmann::json load_entry(const std::string& path) {
    std::ifstream f(path);
    if (!f) throw cni::Error(cni::kIoFailure, "cannot read " + path + ": " + std::strerror(errno));
    std::stringstream ss;
    ss << f.rdbuf();
    return config::find_entry(config::parse_json(ss.str()));
}

config::PluginConfig load_config(const std::string& path) {
    std::vector<config::Problem> problems;
    auto cfg = config::validate(load_entry(path), problems);
    if (cfg && problems.empty()) return *cfg;
    std::string details;
    for (const auto& p : problems) details += p.path + ": " + p.message + "\n";
    if (!details.empty()) details.pop_back();
    std::string first = problems.empty() ? "invalid config" : problems.front().path + ": " + problems.front().message;
    throw cni::Error(cni::kInvalidConfig,
                     path + ": " + std::to_string(problems.size()) + " problem(s); first: " + first, details);
}

}  // namespace ef::ctl
