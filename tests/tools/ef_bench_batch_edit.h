// Edits of an encoded nf_tables batch, shared by the benchmark tools
// (ef_bench_batch, ef_bench_phases). Header-only: tests/tools/*.cpp each
// build into their own program.
#pragma once

#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace bench {

inline uint16_t nft_type(const nlmsghdr* h) { return h->nlmsg_type & 0xff; }
inline bool is_nftables(const nlmsghdr* h) { return (h->nlmsg_type >> 8) == NFNL_SUBSYS_NFTABLES; }

// The batch without the NEWTABLE + DELTABLE pair that precedes each table's
// real NEWTABLE (nft::apply_ruleset replaces: NEWTABLE, DELTABLE, NEWTABLE +
// body). What is left is a plain create: on a netns without the tables it
// commits the same ruleset but frees no kernel objects, so closing the
// socket afterwards does not wait for nf_tables' deferred cleanup.
inline std::vector<uint8_t> create_only(const std::vector<uint8_t>& batch) {
    std::vector<std::pair<size_t, size_t>> msgs;  // offset, aligned length
    for (size_t off = 0; off + sizeof(nlmsghdr) <= batch.size();) {
        const auto* h = reinterpret_cast<const nlmsghdr*>(batch.data() + off);
        msgs.emplace_back(off, NLMSG_ALIGN(h->nlmsg_len));
        off += NLMSG_ALIGN(h->nlmsg_len);
    }
    std::vector<uint8_t> out;
    for (size_t i = 0; i < msgs.size(); ++i) {
        const auto* h = reinterpret_cast<const nlmsghdr*>(batch.data() + msgs[i].first);
        bool del = is_nftables(h) && nft_type(h) == NFT_MSG_DELTABLE;
        bool new_before_del = i + 1 < msgs.size() && is_nftables(h) && nft_type(h) == NFT_MSG_NEWTABLE &&
                              nft_type(reinterpret_cast<const nlmsghdr*>(batch.data() + msgs[i + 1].first)) ==
                                  NFT_MSG_DELTABLE;
        if (del || new_before_del) continue;
        out.insert(out.end(), batch.begin() + long(msgs[i].first),
                   batch.begin() + long(msgs[i].first + msgs[i].second));
    }
    return out;
}

}  // namespace bench
