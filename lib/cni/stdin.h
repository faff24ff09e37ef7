// Reading a plugin's stdin, and the memory a process that reads a large one
// will need. Every ADD is a new process: its start and its page faults are
// part of what the runtime waits for.
#pragma once

#include <cstddef>
#include <memory>
#include <string_view>

namespace ef::cni {

// Bytes read from stdin, followed by `padding` readable bytes.
struct StdinBytes {
    std::unique_ptr<char[]> data;
    size_t size = 0;
    std::string_view view() const { return {data.get(), size}; }
};

// All of stdin, up to `max_bytes`, read straight into one buffer that is
// neither zeroed first nor grown by copying (sized from fstat when stdin is a
// regular file; else room for `max_bytes`, which costs address space only
// until written), with `padding` bytes after it (config::JsonText parses
// without a copy then).
StdinBytes read_stdin(size_t max_bytes, size_t padding);

// Large blocks from the heap, never given back to the system: each phase of
// a large ADD (the parser's document, the allow entries, the set elements,
// the batch) reuses the pages the one before it freed instead of faulting in
// new ones, as it would where glibc maps large blocks and unmaps them when
// freed (and mmaps of their own cannot be backed by prepare_heap()'s huge
// pages). Call first in main; the process is short-lived.
void keep_heap();

// For an input of `input_size` bytes: grows the heap once by 8 bytes per
// input byte (about what a large ADD touches: at 100,000 allow entries the
// input, simdjson's tape, the allow entries, the set elements, the batch)
// and asks for it to be backed by huge pages, so it is faulted in 2 MiB at a
// time rather than 4 KiB: ~10% less CPU for a 100,000-entry ADD here. A
// huge page is resident as a whole, so more grows the peak RSS past what
// it saves (16 bytes: 68 MiB at 100,000 entries; 8: 61 MiB; none: 50 MiB).
// Nothing for a small input, or when called before (read_stdin() calls it
// when fstat tells the size).
void prepare_heap(size_t input_size);

}  // namespace ef::cni
