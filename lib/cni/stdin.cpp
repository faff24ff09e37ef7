#include "cni/stdin.h"

#include <malloc.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace ef::cni {

StdinBytes read_stdin(size_t max_bytes, size_t padding) {
    size_t room = max_bytes;
    struct stat st {};
    if (fstat(STDIN_FILENO, &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= 0) {
        room = std::min(static_cast<size_t>(st.st_size) + 1, max_bytes);
        // Known in advance: the input itself lands in the prepared heap.
        prepare_heap(room);
    }
    StdinBytes in{std::make_unique_for_overwrite<char[]>(room + padding), 0};
    while (in.size < room) {
        const ssize_t n = read(STDIN_FILENO, in.data.get() + in.size, room - in.size);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        in.size += static_cast<size_t>(n);
    }
    // A file that grew while being read: the rest, as from a pipe.
    if (in.size == room && room < max_bytes) {
        StdinBytes more = read_stdin(max_bytes - room, padding);
        StdinBytes all{std::make_unique_for_overwrite<char[]>(room + more.size + padding), room + more.size};
        std::memcpy(all.data.get(), in.data.get(), room);
        std::memcpy(all.data.get() + room, more.data.get(), more.size);
        return all;
    }
    return in;
}

void keep_heap() {
    mallopt(M_MMAP_MAX, 0);  // every block from the heap, however large
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    mallopt(M_TOP_PAD, 16 << 20);
}

void prepare_heap(size_t input_size) {
    constexpr size_t kHuge = size_t{2} << 20;
    static bool prepared = false;
    // Below this the ADD is small and the zeroing of whole huge pages would
    // cost more than the page faults it saves.
    if (prepared || input_size < (size_t{256} << 10)) return;
    prepared = true;
    // In pieces that come from the heap and stay in it when freed (keep_heap()).
    constexpr size_t kPiece = size_t{16} << 20;
    std::vector<void*> pieces;
    for (size_t got = 0; got < 8 * input_size; got += kPiece) {
        void* p = std::malloc(kPiece);
        if (!p) break;
        pieces.push_back(p);
    }
    if (!pieces.empty()) {
        // The span of the pieces, trimmed to whole huge pages.
        auto* lo = static_cast<char*>(*std::min_element(pieces.begin(), pieces.end()));
        auto* hi = static_cast<char*>(*std::max_element(pieces.begin(), pieces.end())) + kPiece;
        const auto lo_addr = reinterpret_cast<uintptr_t>(lo);
        char* begin = lo + ((kHuge - lo_addr % kHuge) % kHuge);
        char* end = hi - reinterpret_cast<uintptr_t>(hi) % kHuge;
        if (end > begin) madvise(begin, static_cast<size_t>(end - begin), MADV_HUGEPAGE);
    }
    for (void* p : pieces) std::free(p);
}

}  // namespace ef::cni
