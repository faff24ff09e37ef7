#include "fence/diff.h"

#include <algorithm>
#include <set>

namespace ef::fence {
namespace {

std::string quote(const std::string& s) { return "`" + s + "`"; }

void diff_metadata(const Metadata& e, const Metadata& a, std::vector<std::string>& out) {
    if (e.profile != a.profile)
        out.push_back("table metadata: profile is \"" + a.profile + "\", the config demands \"" + e.profile + "\"");
    if (e.digest != a.digest)
        out.push_back("table metadata: digest is \"" + a.digest + "\", the config demands \"" + e.digest + "\"");
}

void diff_counters(const Ruleset& e, const Ruleset& a, std::vector<std::string>& out) {
    std::set<std::string> want, have;
    for (const auto& c : e.counters) want.insert(c.name);
    for (const auto& c : a.counters) have.insert(c.name);
    for (const auto& n : want)
        if (!have.contains(n)) out.push_back("counter " + n + ": missing");
    for (const auto& n : have)
        if (!want.contains(n)) out.push_back("counter " + n + ": unexpected (not in the config's fence)");
}

std::string key_text(const Set& s) {
    std::string t;
    for (size_t i = 0; i < s.key.size(); ++i) t += (i ? " . " : "") + std::string(field_type_name(s.key[i]));
    return t;
}

// The elements of `s` in the canonical order of `order` (both sides of a
// comparison come in it, as compiled and as decoded: checked, not assumed).
std::vector<const Element*> in_order(const Set& s, const Set& order) {
    std::vector<const Element*> v;
    v.reserve(s.elements.size());
    for (const auto& el : s.elements) v.push_back(&el);
    auto less = [&order](const Element* x, const Element* y) { return canonical_less(order, *x, *y); };
    if (!std::is_sorted(v.begin(), v.end(), less)) std::sort(v.begin(), v.end(), less);
    return v;
}

// One walk over both sorted lists: linear in the elements, whatever their
// number; each difference listed once, missing ones first, each kind in
// element order.
void diff_elements(const Set& e, const Set& a, std::vector<std::string>& out) {
    const std::vector<const Element*> want = in_order(e, e), have = in_order(a, e);
    std::vector<const Element*> missing, extra;
    size_t i = 0, j = 0;
    auto skip_same = [](const std::vector<const Element*>& v, size_t& k) {
        const Element* at = v[k];
        while (k < v.size() && *v[k] == *at) ++k;
    };
    while (i < want.size() || j < have.size()) {
        if (j == have.size() || (i < want.size() && canonical_less(e, *want[i], *have[j]))) {
            missing.push_back(want[i]);
            skip_same(want, i);
        } else if (i == want.size() || canonical_less(e, *have[j], *want[i])) {
            extra.push_back(have[j]);
            skip_same(have, j);
        } else {
            skip_same(want, i);
            skip_same(have, j);
        }
    }
    auto by_value = [](const Element* x, const Element* y) { return *x < *y; };
    std::sort(missing.begin(), missing.end(), by_value);
    std::sort(extra.begin(), extra.end(), by_value);
    constexpr size_t kMaxListed = 20;
    size_t listed = 0;
    for (const Element* el : missing)
        if (listed++ < kMaxListed) out.push_back("set " + e.name + ": missing element " + quote(to_nft_text(e, *el)));
    for (const Element* el : extra)
        if (listed++ < kMaxListed)
            out.push_back("set " + e.name + ": unexpected element " + quote(to_nft_text(a, *el)));
    if (listed > kMaxListed)
        out.push_back("set " + e.name + ": " + std::to_string(missing.size()) + " elements missing and " +
                      std::to_string(extra.size()) + " unexpected in all");
}

void diff_sets(const Ruleset& e, const Ruleset& a, std::vector<std::string>& out) {
    for (const auto& es : e.sets) {
        auto it = std::find_if(a.sets.begin(), a.sets.end(), [&](const Set& s) { return s.name == es.name; });
        if (it == a.sets.end()) {
            out.push_back("set " + es.name + ": missing");
            continue;
        }
        if (it->key != es.key) {
            out.push_back("set " + es.name + ": type is " + key_text(*it) + ", expected " + key_text(es));
            continue;
        }
        if (it->interval != es.interval) out.push_back("set " + es.name + ": flags interval differ");
        if (it->size != es.size)
            out.push_back("set " + es.name + ": size is " + std::to_string(it->size) + ", expected " +
                          std::to_string(es.size));
        diff_elements(es, *it, out);
    }
    for (const auto& as : a.sets) {
        bool known = std::any_of(e.sets.begin(), e.sets.end(), [&](const Set& s) { return s.name == as.name; });
        if (!known) out.push_back("set " + as.name + ": unexpected (not in the config's fence)");
    }
}

const char* hook_name(Hook h) {
    switch (h) {
        case Hook::output: return "output";
        case Hook::forward: return "forward";
        case Hook::egress: return "egress";
        case Hook::prerouting: return "prerouting";
    }
    return "?";
}

std::string hook_text(const std::optional<BaseHook>& b) {
    if (!b) return "no hook (regular chain)";
    return std::string("hook ") + hook_name(b->hook) + (b->device.empty() ? "" : " device \"" + b->device + "\"") +
           " priority " + std::to_string(b->priority) + " policy " + (b->policy == Policy::drop ? "drop" : "accept");
}

// Rules compared as sequences: the longest common subsequence is unchanged;
// a removal next to an insertion at the same place reads as "changed".
void diff_rules(const Chain& e, const Chain& a, std::vector<std::string>& out) {
    const auto& x = e.rules;
    const auto& y = a.rules;
    size_t n = x.size(), m = y.size();
    std::vector<std::vector<uint32_t>> lcs(n + 1, std::vector<uint32_t>(m + 1, 0));
    for (size_t i = n; i-- > 0;)
        for (size_t j = m; j-- > 0;)
            lcs[i][j] = x[i] == y[j] ? lcs[i + 1][j + 1] + 1 : std::max(lcs[i + 1][j], lcs[i][j + 1]);
    std::string where = "chain " + e.name + ": ";
    size_t i = 0, j = 0;
    while (i < n || j < m) {
        if (i < n && j < m && x[i] == y[j]) {
            ++i, ++j;
        } else if (i < n && j < m && lcs[i + 1][j + 1] == lcs[i][j]) {
            out.push_back(where + "rule " + std::to_string(j + 1) + " changed: expected " + quote(to_nft_text(x[i])) +
                          ", found " + quote(to_nft_text(y[j])));
            ++i, ++j;
        } else if (j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j])) {
            out.push_back(where + "unexpected rule " + std::to_string(j + 1) + ": " + quote(to_nft_text(y[j])));
            ++j;
        } else {
            out.push_back(where + "missing rule " + quote(to_nft_text(x[i])) + " (expected at position " +
                          std::to_string(i + 1) + ")");
            ++i;
        }
    }
}

void diff_chains(const Ruleset& e, const Ruleset& a, std::vector<std::string>& out) {
    for (const auto& ec : e.chains) {
        auto it = std::find_if(a.chains.begin(), a.chains.end(), [&](const Chain& c) { return c.name == ec.name; });
        if (it == a.chains.end()) {
            out.push_back("chain " + ec.name + ": missing");
            continue;
        }
        if (it->base != ec.base)
            out.push_back("chain " + ec.name + ": " + hook_text(it->base) + ", expected " + hook_text(ec.base));
        diff_rules(ec, *it, out);
    }
    for (const auto& ac : a.chains) {
        bool known = std::any_of(e.chains.begin(), e.chains.end(), [&](const Chain& c) { return c.name == ac.name; });
        if (!known) out.push_back("chain " + ac.name + ": unexpected (not in the config's fence)");
    }
}

// The raw-frame table: its presence, the device its chain hooks, then its
// counters and chain in the same words as the inet table's, prefixed.
void diff_netdev(const Ruleset& e, const Ruleset& a, std::vector<std::string>& out) {
    const std::string table = std::string("table netdev ") + kTableName;
    if (!e.netdev && !a.netdev) return;
    if (!a.netdev) {
        out.push_back(table + ": missing (raw frames from the pod are not fenced)");
        return;
    }
    if (!e.netdev) {
        out.push_back(table + ": unexpected (not in the config's fence)");
        return;
    }
    Ruleset want, have;
    want.counters = e.netdev->counters;
    want.chains = e.netdev->chains;
    have.counters = a.netdev->counters;
    have.chains = a.netdev->chains;
    std::vector<std::string> parts;
    diff_counters(want, have, parts);
    diff_chains(want, have, parts);
    const std::string prefix = table + ": ";
    for (auto& p : parts) out.push_back(prefix + p);
}

}  // namespace

std::vector<std::string> diff(const Ruleset& expected, const Ruleset& actual) {
    std::vector<std::string> out;
    diff_metadata(expected.meta, actual.meta, out);
    diff_counters(expected, actual, out);
    diff_sets(expected, actual, out);
    diff_chains(expected, actual, out);
    diff_netdev(expected, actual, out);
    return out;
}

}  // namespace ef::fence
