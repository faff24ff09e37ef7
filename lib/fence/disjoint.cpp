#include "fence/disjoint.h"

#include <algorithm>
#include <cstddef>
#include <map>
#include <optional>

namespace ef::fence {
namespace {

// Big-endian byte strings of equal length compare like the numbers they hold.
std::optional<Bytes> next(Bytes b) {
    for (size_t i = b.size(); i-- > 0;) {
        if (++b[i] != 0) return b;
    }
    return std::nullopt;  // was the maximum
}

bool adjacent_or_overlapping(const FieldRange& a, const FieldRange& b) {
    // a.lo <= b.lo assumed
    if (b.lo <= a.hi) return true;
    auto after = next(a.hi);
    return after && *after == b.lo;
}

std::vector<FieldRange> merge(std::vector<FieldRange> ranges) {
    std::sort(ranges.begin(), ranges.end());
    std::vector<FieldRange> out;
    for (auto& r : ranges) {
        if (!out.empty() && adjacent_or_overlapping(out.back(), r)) {
            out.back().hi = std::max(out.back().hi, r.hi);
        } else {
            out.push_back(r);
        }
    }
    return out;
}

// Address pieces of one protocol, each with the merged ports that cover it.
struct Piece {
    FieldRange addr;
    std::vector<FieldRange> ports;
};

std::vector<Piece> pieces(const std::vector<const Element*>& rects) {
    // Boundaries: where a rectangle starts, and just after where one ends.
    std::map<Bytes, std::vector<const Element*>> starts, ends;
    for (const Element* e : rects) {
        starts[e->fields[0].lo].push_back(e);
        if (auto after = next(e->fields[0].hi)) ends[*after].push_back(e);
    }
    std::vector<Bytes> points;
    points.reserve(starts.size() + ends.size());
    for (auto& [p, _] : starts) points.push_back(p);
    for (auto& [p, _] : ends) points.push_back(p);
    std::sort(points.begin(), points.end());
    points.erase(std::unique(points.begin(), points.end()), points.end());

    std::vector<const Element*> active;
    std::vector<Piece> out;
    for (size_t i = 0; i < points.size(); ++i) {
        const Bytes& p = points[i];
        if (auto it = ends.find(p); it != ends.end())
            for (const Element* e : it->second) active.erase(std::find(active.begin(), active.end(), e));
        if (auto it = starts.find(p); it != starts.end())
            for (const Element* e : it->second) active.push_back(e);
        if (active.empty()) continue;
        Bytes hi;
        if (i + 1 < points.size()) {
            hi = points[i + 1];
            for (size_t k = hi.size(); k-- > 0;)  // hi = next point - 1
                if (hi[k]-- != 0) break;
        } else {
            hi = Bytes(p.size(), 0xff);
        }
        std::vector<FieldRange> ports;
        ports.reserve(active.size());
        for (const Element* e : active) ports.push_back(e->fields[2]);
        Piece piece{{p, hi}, merge(std::move(ports))};
        if (!out.empty() && out.back().ports == piece.ports && next(out.back().addr.hi) == piece.addr.lo) {
            out.back().addr.hi = piece.addr.hi;
        } else {
            out.push_back(std::move(piece));
        }
    }
    return out;
}

}  // namespace

std::vector<Element> disjoint_ranges(const std::vector<Element>& elements) {
    std::vector<FieldRange> ranges;
    ranges.reserve(elements.size());
    for (const auto& e : elements) ranges.push_back(e.fields[0]);
    std::vector<Element> out;
    for (const auto& r : merge(std::move(ranges))) out.push_back(Element{{r}});
    return out;
}

std::vector<Element> disjoint_addr_proto_port(const std::vector<Element>& elements) {
    std::map<Bytes, std::vector<const Element*>> by_proto;
    for (const auto& e : elements) by_proto[e.fields[1].lo].push_back(&e);
    std::vector<Element> out;
    for (const auto& [proto, rects] : by_proto) {
        // Each protocol's pieces come out in order: merged with the ones
        // before, not sorted again.
        const auto before = static_cast<std::ptrdiff_t>(out.size());
        for (auto& piece : pieces(rects))
            for (auto& port : piece.ports) out.push_back(Element{{piece.addr, FieldRange{proto, proto}, port}});
        if (!std::is_sorted(out.begin() + before, out.end())) std::sort(out.begin() + before, out.end());
        std::inplace_merge(out.begin(), out.begin() + before, out.end());
    }
    return out;
}

}  // namespace ef::fence
