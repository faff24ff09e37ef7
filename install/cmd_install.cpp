#include "commands.h"

namespace ef::ctl {
// Placeholder until this command set lands; it registers nothing yet.
void add_install(CLI::App&) {}
}  // namespace ef::ctl
