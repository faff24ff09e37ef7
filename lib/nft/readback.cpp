#include "nft/readback.h"

#include <libmnl/libmnl.h>

#include "nft/codec.h"

namespace ef::nft {

size_t dump_bytes(const fence::Set& s) {
    // Per element: its nest, the key's nest and value, and for a
    // concatenation with intervals the end key's (attribute headers 4 bytes).
    const size_t key = 4 + 4 + MNL_ALIGN(key_len(s.key));
    const size_t per_element = 4 + key + (s.interval && s.key.size() > 1 ? key : 0);
    return s.elements.size() * per_element;
}

ElementRead plan_elements(const fence::Set* want, const fence::Set& got, const KernelSet& k, bool check) {
    if (!want || !k.count) return ElementRead::dump;
    // Another definition: the comparison says so; the elements read as they are.
    if (want->key != got.key || want->interval != got.interval || want->size != got.size) return ElementRead::dump;
    if (want->interval && want->key.size() == 1) return ElementRead::dump;
    if (dump_bytes(*want) <= kOneDumpChunk) return ElementRead::dump;
    return check ? ElementRead::lookup : ElementRead::count;
}

std::string backend_mismatch(const fence::Set& want, const KernelSet& k) {
    // nf_tables' set types are nft_set_<name>_type (nft_set_hash.c,
    // nft_set_bitmap.c, nft_set_rbtree.c, nft_set_pipapo*.c).
    const std::string_view b = k.backend;
    if (!b.starts_with("nft_set_")) return "";
    const char* kind = !want.interval ? "hash" : want.key.size() == 1 ? "rbtree" : "pipapo";
    const bool fits = !want.interval
                          ? (b.find("hash") != std::string_view::npos || b.find("bitmap") != std::string_view::npos)
                          : b.find(kind) != std::string_view::npos;
    if (fits) return "";
    return "set " + want.name + " is held in the kernel's " + k.backend + ", not in a " + kind + " backend";
}

}  // namespace ef::nft
