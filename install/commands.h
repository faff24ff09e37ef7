// egress-fence-ctl subcommands. Each file adds one (or a few closely related)
// subcommand(s) to the CLI11 app; main.cpp only wires them up.
#pragma once

#include <CLI/CLI.hpp>

namespace ef::ctl {

void add_render(CLI::App& app);    // cmd_render.cpp
void add_validate(CLI::App& app);  // cmd_render.cpp
void add_install(CLI::App& app);   // cmd_install.cpp: install, uninstall, verify, pause
void add_inspect(CLI::App& app);   // cmd_inspect.cpp: inspect, metrics
void add_probe(CLI::App& app);     // cmd_probe.cpp: probe
void add_operate(CLI::App& app);   // cmd_operate.cpp: reconcile, log-all-netns

}  // namespace ef::ctl
