// Set elements on the wire. Written straight with libmnl (no per-element
// libnftnl object): 10,000 allow entries must encode and decode in well
// under a millisecond and a few hundred KiB.
//
// Layouts, as nft 1.0.6 sends them:
//  - interval, one field (rbtree): start keys and end keys (end = hi + 1,
//    flag NFT_SET_ELEM_INTERVAL_END), ascending; a leading end marker with key
//    0 when the first range does not start at 0; a range that runs to the max
//    value has no end key and its start carries the INTERVAL_OPEN udata flag.
//  - interval, concatenation (pipapo): one element per range with KEY (all lo)
//    and KEY_END (all hi), each field padded to 4 bytes.
//  - no interval (hash): KEY only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <linux/netlink.h>

#include "fence/ruleset.h"

namespace ef::nft {

// NFTA_SET_USERDATA as nft writes it: the key's byte order, and for a
// concatenation the (empty) typeof description nft uses to print fields.
std::vector<uint8_t> set_userdata(const std::vector<fence::FieldType>& key);

class ElementWriter {
  public:
    // Largest NEWSETELEM message fill() writes (the element list is one
    // netlink attribute, whose length is 16 bits).
    static constexpr size_t kMaxMessage = 65536 + 1024;

    explicit ElementWriter(const fence::Set& set);
    // At least the bytes the NEWSETELEM messages of `set` take.
    static size_t bytes_bound(const fence::Set& set);
    bool done() const { return next_ >= set_.elements.size() && !pending_marker_ && !pending_end_; }
    // Appends NFTA_SET_ELEM_LIST_ELEMENTS with as many elements as fit, at
    // most `max_entries` element nests.
    void fill(nlmsghdr* nlh, size_t max_entries = SIZE_MAX);
    // The index in the set's elements of the next element fill() writes.
    size_t next_index() const { return next_; }

  private:
    struct Entry {
        uint32_t flags = 0;
        const uint8_t* key = nullptr;
        const uint8_t* key_end = nullptr;
        size_t len = 0;
        bool open = false;
    };
    Entry next_entry();
    void advance();
    void check(const fence::Element& e) const;
    const uint8_t* concat(const fence::Element& e, bool hi, uint8_t* out) const;

    const fence::Set& set_;
    bool concat_;
    size_t klen_;
    size_t next_ = 0;
    bool pending_marker_ = false;
    bool pending_end_ = false;
    fence::Bytes zero_, end_;
    uint8_t lo_buf_[64], hi_buf_[64];
};

// The element that the NEWSETELEM message `msg`, built by ElementWriter for
// a set of `rs`, carries in the nest starting `offset` bytes into the
// message (where the kernel says the element it refused is), in nft syntax
// and quoted, e.g. "`10.0.0.1 . tcp . 443`"; "" when no element starts there.
std::string element_at(const fence::Ruleset& rs, const nlmsghdr* msg, uint32_t offset);

// Whether NEWSETELEM message `reply` (the kernel's answer to a non-dump
// GETSETELEM for one element) holds exactly element `e` of `set`, a set
// without one-field intervals (a hash set, or a concatenation with intervals:
// its key and end key).
bool reply_holds(const fence::Set& set, const fence::Element& e, const nlmsghdr* reply);

// Collects the elements of one set from NEWSETELEM messages and rebuilds the
// canonical lo/hi form, in canonical order (fence::sort_elements), without
// duplicates. A hash set's keys are held as bytes until finish() builds
// the elements in order.
class ElementReader {
  public:
    explicit ElementReader(const fence::Set& shape);
    // `elems` is NFTA_SET_ELEM_LIST_ELEMENTS; throws cni::Error on bad input.
    void add_list(const nlattr* elems);
    std::vector<fence::Element> finish();

  private:
    void add_one(const nlattr* elem);
    fence::Element split(const uint8_t* lo, const uint8_t* hi) const;

    std::string name_;
    std::vector<fence::FieldType> key_;
    bool interval_, concat_;
    size_t klen_;
    std::vector<std::pair<fence::Bytes, bool>> bounds_;  // rbtree: (key, is_end)
    std::vector<uint8_t> keys_;                          // hash: the fields' values, unpadded
    std::vector<fence::Element> elements_;
};

}  // namespace ef::nft
