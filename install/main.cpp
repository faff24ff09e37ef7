// egress-fence-ctl: the admin's and the installer's tool.
#include <iostream>

#include "cni/error.h"
#include "commands.h"

namespace {

int run(int argc, char** argv) {
    CLI::App app{"egress-fence-ctl: render, validate, install and inspect egress-fence"};
    app.require_subcommand(1);
    ef::ctl::add_render(app);
    ef::ctl::add_validate(app);
    ef::ctl::add_install(app);
    ef::ctl::add_inspect(app);
    ef::ctl::add_probe(app);
    ef::ctl::add_operate(app);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const ef::cni::Error& e) {
        std::cerr << "egress-fence-ctl: " << e.msg << "\n";
        if (!e.details.empty()) std::cerr << e.details << "\n";
        return e.code > 0 && e.code < 126 ? e.code : 1;
    } catch (const std::exception& e) {
        // Anything else (a library's exception, out of memory) is a bug: say so rather than abort.
        std::cerr << "egress-fence-ctl: internal error: " << e.what() << "\n";
        return 1;
    }
}
