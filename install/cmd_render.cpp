// render: what a pod would get, in nft syntax. validate: every problem in a config.
#include <iostream>

#include "cni/error.h"
#include "commands.h"
#include "config/values.h"
#include "config_file.h"
#include "fence/compile.h"

namespace ef::ctl {
namespace {

struct RenderOptions {
    std::string config;
    std::string pod_namespace;
    std::string pod_name = "pod";
    std::string container_id;
    std::vector<std::string> annotations;
    std::string ifname = fence::kDefaultDevice;
    std::vector<std::string> onlink;
    bool metadata = false;
};

// The attachment the options describe: --ifname and its --onlink prefixes.
fence::Attachment attachment(const RenderOptions& o) {
    fence::Attachment a{o.ifname, {}};
    for (const auto& text : o.onlink) {
        std::string why;
        auto c = config::parse_cidr(text, why);
        if (!c || !c->v6)
            throw cni::Error(cni::kInvalidConfig,
                             "--onlink \"" + text + "\" is not an IPv6 prefix" + (why.empty() ? "" : ": " + why));
        a.onlink6.push_back(*c);
    }
    return a;
}

std::map<std::string, std::string> parse_annotations(const std::vector<std::string>& kvs) {
    std::map<std::string, std::string> out;
    for (const auto& kv : kvs) {
        size_t eq = kv.find('=');
        if (eq == std::string::npos || eq == 0)
            throw cni::Error(cni::kInvalidConfig, "--annotation \"" + kv + "\" is not KEY=VALUE");
        out[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    return out;
}

void render(const RenderOptions& o) {
    config::PluginConfig cfg = load_config(o.config);
    config::Pod pod{o.pod_namespace, o.pod_name, o.container_id, "", parse_annotations(o.annotations)};
    if (o.pod_namespace.empty()) {
        // No pod given: every profile, as a pod matched to it would get it.
        bool first = true;
        for (const auto& [name, profile] : cfg.profiles) {
            std::cout << (first ? "" : "\n") << "# profile " << name << "\n"
                      << fence::to_nft_text(fence::compile(profile, pod, {attachment(o)}), o.metadata);
            first = false;
        }
        return;
    }
    auto profile = config::select_profile(cfg, pod);
    if (!profile) {
        std::cout << "# pod " << pod.namespace_ << "/" << pod.name << " matches no selector: it is not fenced\n";
        return;
    }
    std::cout << fence::to_nft_text(fence::compile(*profile, pod, {attachment(o)}), o.metadata);
}

}  // namespace

void add_render(CLI::App& app) {
    auto o = std::make_shared<RenderOptions>();
    auto* cmd = app.add_subcommand("render", "print the nftables ruleset a pod would get, as nft lists it");
    cmd->add_option("--config", o->config, "plugin config: the egress-fence entry or a conflist holding it")
        ->required();
    cmd->add_option("--namespace", o->pod_namespace, "the pod's namespace (omit to render every profile)");
    cmd->add_option("--name", o->pod_name, "the pod's name (appears in the log prefix)");
    cmd->add_option("--container-id", o->container_id, "the sandbox container id (metadata only)");
    cmd->add_option("--annotation", o->annotations, "a pod annotation KEY=VALUE (repeatable)");
    cmd->add_option("--ifname", o->ifname, "the pod's interface (CNI_IFNAME) the raw-frame chain hooks (default eth0)");
    cmd->add_option("--onlink", o->onlink,
                    "an IPv6 prefix on that interface (prevResult's address, host bits cleared), where neighbour "
                    "discovery may go (repeatable)");
    cmd->add_flag("--metadata", o->metadata, "start with a comment holding the table metadata");
    cmd->callback([o] { render(*o); });
}

void add_validate(CLI::App& app) {
    auto path = std::make_shared<std::string>();
    auto* cmd = app.add_subcommand("validate", "check a plugin config and report every problem with its JSON path");
    cmd->add_option("--config", *path, "plugin config: the egress-fence entry or a conflist holding it")->required();
    cmd->callback([path] {
        config::PluginConfig cfg = load_config(*path);
        std::cout << *path << ": valid (" << cfg.profiles.size() << " profiles, " << cfg.selectors.size()
                  << " selectors)\n";
    });
}

}  // namespace ef::ctl
