// ef_bench_sets: what the kernel says about each set of a table: its element
// count (NFTA_SET_COUNT) and the backend it chose (NFTA_SET_TYPE), for the
// benchmark's backend table (tests/bench/run.sh). Linux 6.16+.
//
//   ef_bench_sets NETNS [TABLE]     (TABLE: egress_fence; family inet)
//
// Prints one line per set: `set=NAME count=N backend=STRING interval=0|1 size=N`.
// The backend string is "%ps" of the kernel's ops:
// a symbol name, or an address on a kernel without CONFIG_KALLSYMS_ALL
// (run.sh names those by reference sets of a known backend).
#include <arpa/inet.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include <libnftnl/common.h>

#include "cni/error.h"
#include "netns/netns.h"
#include "nft/codec.h"
#include "nft/readback.h"
#include "nft/socket.h"

using namespace ef;

int main(int argc, char** argv) {
    if (argc < 2) {
        std::cerr << "usage: ef_bench_sets NETNS [TABLE]\n";
        return 250;
    }
    const std::string table = argc > 2 ? argv[2] : fence::kTableName;
    try {
        netns::ScopedNetns inside(argv[1]);
        nft::Socket s;
        std::vector<char> buf(4096);
        nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buf.data(), NFT_MSG_GETSET, nft::kFamily, NLM_F_DUMP, s.take_seq());
        mnl_attr_put_strz(nlh, NFTA_SET_TABLE, table.c_str());
        // The decoder keeps the sets of our table only; others are read raw.
        std::vector<uint8_t> msgs;
        bool interrupted = false;
        if (int err = s.request(nlh, msgs, interrupted)) {
            std::cerr << "ef_bench_sets: GETSET: " << std::strerror(err) << "\n";
            return 1;
        }
        for (size_t off = 0; off + sizeof(nlmsghdr) <= msgs.size();) {
            const auto* m = reinterpret_cast<const nlmsghdr*>(msgs.data() + off);
            off += NLMSG_ALIGN(m->nlmsg_len);
            std::string name, backend, count = "-";
            uint32_t flags = 0, size = 0;
            nft::for_each_attr(m, sizeof(nfgenmsg), [&](const nlattr* a) {
                switch (mnl_attr_get_type(a)) {
                    case NFTA_SET_NAME: name = mnl_attr_get_str(a); break;
                    case NFTA_SET_FLAGS: flags = ntohl(mnl_attr_get_u32(a)); break;
                    case nft::kNftaSetType: backend = mnl_attr_get_str(a); break;
                    case nft::kNftaSetCount: count = std::to_string(ntohl(mnl_attr_get_u32(a))); break;
                    case NFTA_SET_DESC:
                        nft::for_each_nested(a, [&](const nlattr* d) {
                            if (mnl_attr_get_type(d) == NFTA_SET_DESC_SIZE) size = ntohl(mnl_attr_get_u32(d));
                        });
                        break;
                    default: break;
                }
            });
            std::cout << "set=" << name << " count=" << count << " backend=" << (backend.empty() ? "-" : backend)
                      << " interval=" << ((flags & NFT_SET_INTERVAL) ? 1 : 0) << " size=" << size << "\n";
        }
    } catch (const cni::Error& e) {
        std::cerr << "ef_bench_sets: " << e.msg << "\n";
        return 1;
    }
    return 0;
}
