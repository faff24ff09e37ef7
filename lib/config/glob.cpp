#include "config/config.h"

namespace ef::config {

// Greedy matching that remembers only the last '*': on a mismatch the star
// takes one more character. No recursion, O(pattern * text) worst case.
bool glob_match(std::string_view pattern, std::string_view text) {
    std::size_t p = 0, t = 0;
    std::size_t star = std::string_view::npos;  // position of the last '*' seen
    std::size_t star_text = 0;                  // where the text stood when it was seen
    while (t < text.size()) {
        if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
            ++p;
            ++t;
        } else if (p < pattern.size() && pattern[p] == '*') {
            star = p++;
            star_text = t;
        } else if (star != std::string_view::npos) {
            p = star + 1;
            t = ++star_text;
        } else {
            return false;
        }
    }
    while (p < pattern.size() && pattern[p] == '*') ++p;
    return p == pattern.size();
}

}  // namespace ef::config
