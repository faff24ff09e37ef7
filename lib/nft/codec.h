// Internal to nft/: the pieces encode.cpp, decode.cpp and apply.cpp share.
// Nothing here is part of the contract in nft.h.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/object.h>
#include <libnftnl/rule.h>
#include <libnftnl/table.h>
#include <linux/netlink.h>

#include "fence/ruleset.h"

namespace ef::nft {

// libnftnl objects with their free function as deleter.
template <typename T, void (*Free)(const T*)>
struct Deleter {
    void operator()(T* p) const { Free(p); }
};
using TablePtr = std::unique_ptr<nftnl_table, Deleter<nftnl_table, nftnl_table_free>>;
using ChainPtr = std::unique_ptr<nftnl_chain, Deleter<nftnl_chain, nftnl_chain_free>>;
using RulePtr = std::unique_ptr<nftnl_rule, Deleter<nftnl_rule, nftnl_rule_free>>;
using ObjPtr = std::unique_ptr<nftnl_obj, Deleter<nftnl_obj, nftnl_obj_free>>;
using ExprPtr = std::unique_ptr<nftnl_expr, Deleter<nftnl_expr, nftnl_expr_free>>;

// Our table lives in family inet (NFPROTO_INET).
inline constexpr uint16_t kFamily = 1;

// nft datatype ids (nftables src/datatype.h), the ones our set keys use.
uint32_t datatype_id(fence::FieldType t);
// Bytes a field's value occupies, and how much room it takes in a
// concatenation (each field padded to a 32-bit register).
size_t value_len(fence::FieldType t);
size_t padded_len(fence::FieldType t);
// The key length the kernel gets: the sum of padded lengths for a
// concatenation, the plain value length for one field.
size_t key_len(const std::vector<fence::FieldType>& key);

// Grows a netlink batch message by message in one contiguous buffer, so the
// whole transaction goes out in a single sendmsg (the kernel requires the
// batch BEGIN..END in one skb).
class BatchBuffer {
  public:
    explicit BatchBuffer(uint32_t first_seq) : seq_(first_seq) {}
    // Room for `bytes` in all, so a large batch is not copied as it grows.
    void expect(size_t bytes) { buf_.reserve(bytes); }
    // Room for the next message of at most `max_len` bytes; the returned
    // pointer is valid until the next call.
    char* reserve(size_t max_len);
    // Accounts the message just built at reserve()'s pointer; returns its seq.
    uint32_t commit();
    uint32_t next_seq() const { return seq_; }
    std::vector<uint8_t> take() &&;

  private:
    std::vector<uint8_t> buf_;
    size_t used_ = 0;
    uint32_t seq_;
};

// What each message of a batch adds, indexed by seq - first seq, so a kernel
// error can name the object ("rule 3 of chain output").
using BatchLabels = std::vector<std::string>;

// How a batch installs the tables. `replace` (add, delete, add) works whether
// or not they exist, but the deletion makes the kernel free objects after the
// commit, and closing the socket then waits for an RCU grace period (~8 ms
// here). `create` adds them exclusively and fails with EEXIST when one exists.
enum class BatchMode { replace, create };

// encode_batch, also returning the label of every message.
std::vector<uint8_t> encode_batch_labeled(const fence::Ruleset& rs, uint32_t seq, BatchLabels& labels,
                                          bool inject_failure = false, BatchMode mode = BatchMode::replace);

// One batch deleting both tables, present or not (each is added first, so
// the delete cannot fail for a missing table).
std::vector<uint8_t> encode_delete_batch(uint32_t seq, BatchLabels& labels);

// Decodes nf_tables messages one at a time, as a dump delivers them, into
// one Ruleset: what decode_messages does for a buffer of them, without the
// buffer (the read-back of 100,000 set elements never holds their dump).
struct KernelSet;
class MessageDecoder {
  public:
    // `read_set_count` false: decode as if the kernel reported no
    // NFTA_SET_COUNT (as before Linux 6.16), for tests of that path.
    explicit MessageDecoder(bool read_set_count = true);
    ~MessageDecoder();
    MessageDecoder(const MessageDecoder&) = delete;
    MessageDecoder& operator=(const MessageDecoder&) = delete;
    // One message whose nlmsg_len the caller checked against its buffer.
    void message(const nlmsghdr* nlh);
    // The sets decoded so far (their elements come at finish()), and what
    // the kernel said about each, in the same order.
    const std::vector<fence::Set>& sets() const;
    const std::vector<KernelSet>& kernel_sets() const;
    // Whether table inet egress_fence was among the messages.
    bool has_table() const;
    fence::Ruleset finish();

  private:
    struct State;
    std::unique_ptr<State> state_;
};

// Metadata <-> table userdata (nftnl_udata TLVs of our own types).
std::vector<uint8_t> encode_metadata(const fence::Metadata& in);
fence::Metadata decode_metadata(const uint8_t* data, size_t len);

// libmnl's mnl_attr_for_each* macros assign void*, which C++ refuses; these
// do the same bounds checks (mnl_attr_ok) on every step.
template <class F>
void for_each_attr(const nlmsghdr* nlh, size_t offset, F f) {
    const char* tail = static_cast<const char*>(mnl_nlmsg_get_payload_tail(nlh));
    const auto* a = static_cast<const nlattr*>(mnl_nlmsg_get_payload_offset(nlh, offset));
    for (; mnl_attr_ok(a, static_cast<int>(tail - reinterpret_cast<const char*>(a))); a = mnl_attr_next(a)) f(a);
}
template <class F>
void for_each_nested(const nlattr* nest, F f) {
    const auto* a = static_cast<const nlattr*>(mnl_attr_get_payload(nest));
    const char* tail = reinterpret_cast<const char*>(a) + mnl_attr_get_payload_len(nest);
    for (; mnl_attr_ok(a, static_cast<int>(tail - reinterpret_cast<const char*>(a))); a = mnl_attr_next(a)) f(a);
}

// Interval and concatenation helpers, shared by the element coder.
bool is_max(const fence::Bytes& b);
bool is_zero(const fence::Bytes& b);
fence::Bytes plus_one(fence::Bytes b);   // wraps to zero after the max
fence::Bytes minus_one(fence::Bytes b);  // wraps to the max below zero

std::string hex(const uint8_t* p, size_t n);

}  // namespace ef::nft
