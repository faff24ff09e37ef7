#include "nft/nft.h"

namespace ef::nft {

std::string foreign_chain_warning(const ForeignChain& c) {
    return "table " + c.family + " " + c.table + " chain " + c.chain + " also hooks " + c.hook + " (priority " +
           std::to_string(c.priority) + ", policy " + c.policy +
           "): not part of the fence; it can drop more but cannot let through what the fence refuses";
}

}  // namespace ef::nft
