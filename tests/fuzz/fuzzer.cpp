// One libFuzzer binary per entry of targets.h: CMake compiles this file once
// per target with EF_FUZZ_ENTRY naming the entry function.
#include "targets.h"

#ifndef EF_FUZZ_ENTRY
#error "compile with -DEF_FUZZ_ENTRY=ef::fuzz::<entry>"
#endif

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    EF_FUZZ_ENTRY(data, size);
    return 0;
}
