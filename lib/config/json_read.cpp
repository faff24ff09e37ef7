// read_json(), read_stdin_json(), scan_json(): one cursor over the text, one
// function per JSON production. The fast allow path is the only place that
// knows the config schema; whatever it does not take is read as a plain value.
#include "config/json_read.h"

#include <array>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "cni/error.h"
#include "config/values.h"

namespace ef::config {

namespace {

using nlohmann::json;

constexpr std::string_view kBom = "\xEF\xBB\xBF";

// Bytes a string holds as they are: printable ASCII but the quote and the
// backslash. Anything else ends the run of plain bytes.
constexpr std::array<bool, 256> kPlainStringByte = [] {
    std::array<bool, 256> t{};
    for (int c = 0x20; c < 0x80; ++c) t[c] = c != '"' && c != '\\';
    return t;
}();

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Past the plain bytes from `p`, eight at a time while no byte of a word is a
// quote, a backslash, a control character or non-ASCII (SWAR: a byte's high
// bit set in `special` only if some byte at or below it is one of those).
const char* skip_plain(const char* p, const char* end) {
    constexpr uint64_t kOnes = 0x0101010101010101ULL, kHigh = 0x8080808080808080ULL;
    while (end - p >= 8) {
        uint64_t w = 0;
        std::memcpy(&w, p, 8);
        const uint64_t quote = w ^ (kOnes * '"'), backslash = w ^ (kOnes * '\\');
        const uint64_t special = ((w - kOnes * 0x20) & ~w) | ((quote - kOnes) & ~quote) |
                                 ((backslash - kOnes) & ~backslash) | w;
        if (special & kHigh) break;
        p += 8;
    }
    while (p != end && kPlainStringByte[static_cast<unsigned char>(*p)]) ++p;
    return p;
}

// "a.b.c.d" or "a.b.c.d/n" in the one spelling inet_pton and parse_cidr
// accept without a problem (decimal octets without leading zeros, a prefix
// of 1-3 digits up to 32, no host bits): the common case of a long allow
// list, without parse_cidr's copies. false: let parse_cidr decide.
bool plain_ipv4_cidr(std::string_view text, Cidr& out) {
    const char* p = text.data();
    const char* end = p + text.size();
    Cidr c;
    for (int octet = 0; octet < 4; ++octet) {
        if (octet > 0) {
            if (p == end || *p != '.') return false;
            ++p;
        }
        const char* start = p;
        unsigned v = 0;
        while (p != end && is_digit(*p) && p - start < 3) v = v * 10 + static_cast<unsigned>(*p++ - '0');
        if (p == start || v > 255 || (*start == '0' && p - start > 1)) return false;
        c.addr[octet] = static_cast<uint8_t>(v);
    }
    c.prefix = 32;
    if (p != end) {
        if (*p++ != '/') return false;
        const char* start = p;
        unsigned n = 0;
        while (p != end && is_digit(*p) && p - start < 3) n = n * 10 + static_cast<unsigned>(*p++ - '0');
        if (p == start || p != end || n > 32) return false;
        c.prefix = static_cast<uint8_t>(n);
    }
    const uint32_t addr = uint32_t{c.addr[0]} << 24 | uint32_t{c.addr[1]} << 16 | uint32_t{c.addr[2]} << 8 | c.addr[3];
    const uint32_t host = c.prefix == 32 ? 0 : 0xFFFFFFFFu >> c.prefix;
    if (addr & host) return false;
    out = c;
    return true;
}

std::string shown(const char* p, const char* end) {
    if (p == end) return "the end of the input";
    const auto c = static_cast<unsigned char>(*p);
    if (c >= 0x20 && c < 0x7f) return std::string("'") + *p + "'";
    static constexpr char kHex[] = "0123456789ABCDEF";
    return std::string("byte 0x") + kHex[c >> 4] + kHex[c & 15];
}

void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

std::optional<Protocol> protocol_of(std::string_view name) {
    if (name == "tcp") return Protocol::tcp;
    if (name == "udp") return Protocol::udp;
    if (name == "sctp") return Protocol::sctp;
    if (name == "any") return Protocol::any;
    return std::nullopt;
}

class Reader {
  public:
    explicit Reader(std::string_view text) : begin_(text.data()), p_(text.data()), end_(text.data() + text.size()) {
        if (text.starts_with(kBom)) p_ += kBom.size();
    }

    json document(DecodedAllow* allow) {
        allow_ = allow;
        json root;
        ws();
        if (allow_ && p_ != end_ && *p_ == '{') object(root, Context::stdin_top, nullptr);
        else value(root);
        end_of_document();
        return root;
    }

    // --- scan_json: the same grammar, an explicit stack instead of recursion.
    std::string scan(bool& is_object, const std::function<void(const TopMember&)>& member) {
        try {
            scan_document(is_object, member);
            return {};
        } catch (const cni::Error& e) {
            return e.msg;
        }
    }

  private:
    enum class Context : uint8_t { plain, stdin_top, profiles, profile };

    const char* begin_;
    const char* p_;
    const char* end_;
    std::size_t depth_ = 0;
    DecodedAllow* allow_ = nullptr;

    [[noreturn]] void fail(const char* at, const std::string& what) const {
        throw cni::Error(cni::kDecodeFailure,
                         "input is not valid JSON (byte " + std::to_string(at - begin_ + 1) + "): " + what);
    }
    [[noreturn]] void fail_expected(const std::string& what) const {
        fail(p_, "expected " + what + ", found " + shown(p_, end_));
    }

    void ws() {
        while (p_ != end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
    }
    bool at(char c) const { return p_ != end_ && *p_ == c; }

    void end_of_document() {
        ws();
        if (p_ != end_) fail(p_, "expected the end of the input after the JSON value, found " + shown(p_, end_));
    }

    void enter() {
        if (++depth_ > kMaxJsonDepth)
            throw cni::Error(cni::kDecodeFailure, "JSON nesting is deeper than " + std::to_string(kMaxJsonDepth) +
                                                      " levels (at byte " + std::to_string(p_ - begin_ + 1) + ")");
    }

    // --- values into a document ------------------------------------------------
    void value(json& out) {
        if (p_ == end_) fail_expected("a JSON value");
        switch (*p_) {
            case '{': object(out, Context::plain, nullptr); return;
            case '[': array(out); return;
            case '"':
                out = json::value_t::string;
                string_body<true>(out.get_ptr<json::string_t*>());
                return;
            case 't':
                literal("true");
                out = true;
                return;
            case 'f':
                literal("false");
                out = false;
                return;
            case 'n':
                literal("null");
                out = nullptr;
                return;
            default:
                if (*p_ == '-' || is_digit(*p_)) number(&out);
                else fail_expected("a JSON value");
        }
    }

    void literal(std::string_view word) {
        if (std::string_view(p_, end_ - p_).substr(0, word.size()) != word) {
            // The first byte that differs.
            const char* q = p_;
            while (q != end_ && static_cast<std::size_t>(q - p_) < word.size() && *q == word[q - p_]) ++q;
            fail(q, "invalid literal (expected " + std::string(word) + "), found " + shown(q, end_));
        }
        p_ += word.size();
    }

    // Members are read in order; `ctx` says where the object is, for the
    // allow path: stdin's top level, its "profiles", or one profile.
    void object(json& out, Context ctx, const std::string* profile) {
        enter();
        ++p_;
        out = json::value_t::object;
        auto& members = *out.get_ptr<json::object_t*>();
        ws();
        if (at('}')) {
            ++p_;
            --depth_;
            return;
        }
        for (;;) {
            if (!at('"')) fail_expected("a key (a string)");
            std::string key;
            string_body<true>(&key);
            auto [slot, inserted] = members.emplace(std::move(key), json());
            // nlohmann would keep the last one silently, and two "profile"
            // keys in one selector must not be settled by parser order.
            if (!inserted)
                throw cni::Error(cni::kDecodeFailure,
                                 "key \"" + slot->first + "\" appears twice in one JSON object; remove one");
            ws();
            if (!at(':')) fail_expected("':' after an object key");
            ++p_;
            ws();
            member_value(slot->second, ctx, slot->first, profile);
            ws();
            if (at(',')) {
                ++p_;
                ws();
                continue;
            }
            if (at('}')) break;
            fail_expected("',' or '}' after an object member");
        }
        ++p_;
        --depth_;
    }

    void member_value(json& out, Context ctx, const std::string& key, const std::string* profile) {
        if (ctx == Context::stdin_top && key == "profiles" && at('{')) return object(out, Context::profiles, nullptr);
        if (ctx == Context::profiles && at('{')) return object(out, Context::profile, &key);
        if (ctx == Context::profile && key == "allow" && at('[')) return allow_array(out, *profile);
        value(out);
    }

    void array(json& out) {
        array_of(out, [this](json::array_t& elements) { value(elements.emplace_back()); });
    }

    // `[ e, e, ... ]` into `out`, each element read by `element(elements)`.
    template <class Element>
    void array_of(json& out, Element element) {
        enter();
        ++p_;
        out = json::value_t::array;
        auto& elements = *out.get_ptr<json::array_t*>();
        ws();
        if (at(']')) {
            ++p_;
            --depth_;
            return;
        }
        for (;;) {
            element(elements);
            ws();
            if (at(',')) {
                ++p_;
                ws();
                continue;
            }
            if (at(']')) break;
            fail_expected("',' or ']' after an array element");
        }
        ++p_;
        --depth_;
    }

    // --- strings -----------------------------------------------------------------
    // From the opening quote to past the closing one; appends the decoded
    // text to `out` when Build.
    template <bool Build>
    void string_body(std::string* out) {
        ++p_;
        for (;;) {
            const char* run = p_;
            p_ = skip_plain(p_, end_);
            if constexpr (Build) out->append(run, p_);
            if (p_ == end_) fail(p_, "the input ends inside a string");
            const auto c = static_cast<unsigned char>(*p_);
            if (c == '"') {
                ++p_;
                return;
            }
            if (c == '\\') escape<Build>(out);
            else if (c < 0x20) fail(p_, "control character " + shown(p_, end_) + " in a string must be escaped");
            else utf8_sequence<Build>(out);
        }
    }

    template <bool Build>
    void escape(std::string* out) {
        const char* start = p_++;
        if (p_ == end_) fail(p_, "the input ends inside a string");
        char c = 0;
        switch (*p_) {
            case '"': c = '"'; break;
            case '\\': c = '\\'; break;
            case '/': c = '/'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'n': c = '\n'; break;
            case 'r': c = '\r'; break;
            case 't': c = '\t'; break;
            case 'u': {
                ++p_;
                uint32_t cp = hex4();
                if (cp >= 0xDC00 && cp <= 0xDFFF)
                    fail(start, "\\u escape of a lone UTF-16 low surrogate (it must follow a high one)");
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u')
                        fail(start, "\\u escape of a UTF-16 high surrogate not followed by a low one");
                    p_ += 2;
                    const uint32_t low = hex4();
                    if (low < 0xDC00 || low > 0xDFFF)
                        fail(start, "\\u escape of a UTF-16 high surrogate not followed by a low one");
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                }
                if constexpr (Build) append_utf8(*out, cp);
                return;
            }
            default: fail(start, "invalid escape in a string (\\" + std::string(1, *p_) + ")");
        }
        ++p_;
        if constexpr (Build) *out += c;
    }

    uint32_t hex4() {
        uint32_t v = 0;
        for (int i = 0; i < 4; ++i, ++p_) {
            if (p_ == end_) fail(p_, "the input ends inside a \\u escape");
            const char c = *p_;
            uint32_t d = 0;
            if (c >= '0' && c <= '9') d = c - '0';
            else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
            else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
            else fail(p_, "expected 4 hex digits after \\u, found " + shown(p_, end_));
            v = v * 16 + d;
        }
        return v;
    }

    // One multi-byte UTF-8 sequence (RFC 3629 table 4): no overlong forms, no
    // encoded surrogates, nothing above U+10FFFF.
    template <bool Build>
    void utf8_sequence(std::string* out) {
        const char* start = p_;
        const auto lead = static_cast<unsigned char>(*p_);
        int more = 0;
        unsigned char lo = 0x80, hi = 0xBF;  // the range of the second byte
        if (lead >= 0xC2 && lead <= 0xDF) more = 1;
        else if (lead == 0xE0) more = 2, lo = 0xA0;
        else if (lead == 0xED) more = 2, hi = 0x9F;
        else if (lead >= 0xE1 && lead <= 0xEF) more = 2;
        else if (lead == 0xF0) more = 3, lo = 0x90;
        else if (lead >= 0xF1 && lead <= 0xF3) more = 3;
        else if (lead == 0xF4) more = 3, hi = 0x8F;
        else fail(p_, "invalid UTF-8 in a string (" + shown(p_, end_) + ")");
        ++p_;
        for (int i = 0; i < more; ++i, ++p_) {
            if (p_ == end_) fail(p_, "the input ends inside a UTF-8 sequence");
            const auto b = static_cast<unsigned char>(*p_);
            if (b < (i == 0 ? lo : 0x80) || b > (i == 0 ? hi : 0xBF))
                fail(p_, "invalid UTF-8 in a string (" + shown(p_, end_) + " in the sequence at byte " +
                             std::to_string(start - begin_ + 1) + ")");
        }
        if constexpr (Build) out->append(start, p_);
    }

    // --- numbers -----------------------------------------------------------------
    // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?; stored into `out` when given.
    void number(json* out) {
        const char* start = p_;
        const bool negative = *p_ == '-';
        if (negative) ++p_;
        if (p_ == end_ || !is_digit(*p_)) fail_expected("a digit in a number");
        if (*p_ == '0') ++p_;
        else
            while (p_ != end_ && is_digit(*p_)) ++p_;
        bool integral = true;
        if (at('.')) {
            integral = false;
            ++p_;
            if (p_ == end_ || !is_digit(*p_)) fail_expected("a digit after the decimal point");
            while (p_ != end_ && is_digit(*p_)) ++p_;
        }
        if (at('e') || at('E')) {
            integral = false;
            ++p_;
            if (at('+') || at('-')) ++p_;
            if (p_ == end_ || !is_digit(*p_)) fail_expected("a digit in the exponent");
            while (p_ != end_ && is_digit(*p_)) ++p_;
        }
        if (integral) {
            // An integer too large for its type becomes a float, as in nlohmann.
            if (!negative) {
                uint64_t u = 0;
                if (std::from_chars(start, p_, u).ec == std::errc()) {
                    if (out) *out = u;
                    return;
                }
            } else {
                int64_t i = 0;
                if (std::from_chars(start, p_, i).ec == std::errc()) {
                    if (out) *out = i;
                    return;
                }
            }
        }
        // strtod as nlohmann uses it (the plugin keeps the C locale): the same
        // rounding, an underflow kept as the value strtod gives.
        const std::string token(start, p_);
        const double d = std::strtod(token.c_str(), nullptr);
        if (!std::isfinite(d)) fail(start, "number overflow parsing '" + token + "'");
        if (out) *out = d;
    }

    // --- the allow path ------------------------------------------------------------
    void allow_array(json& out, const std::string& profile) {
        auto& decoded = allow_->by_profile[profile];
        array_of(out, [this, &decoded](json::array_t& elements) {
            const char* start = p_;
            if (AllowEntry entry; allow_entry(entry)) {
                decoded.push_back(std::move(entry));
                elements.emplace_back(json::value_t::discarded);
            } else {
                p_ = start;
                value(elements.emplace_back());
            }
        });
    }

    // A string of printable ASCII without escapes, as a view of the text.
    bool plain_string(std::string_view& s) {
        if (!at('"')) return false;
        const char* start = ++p_;
        p_ = skip_plain(p_, end_);
        if (!at('"')) return false;
        s = std::string_view(start, p_ - start);
        ++p_;
        return true;
    }

    // One element of an allow list that validate() would accept without a
    // problem, decoded as read_allow_entry() decodes it; false for anything
    // else (the caller reads it again as a plain value).
    bool allow_entry(AllowEntry& entry) {
        if (!at('{')) return false;
        ++p_;
        ws();
        std::string_view cidr_text;
        std::optional<Protocol> protocol;
        bool have_cidr = false, have_ports = false;
        std::vector<PortRange> ports;
        for (;;) {
            std::string_view key;
            if (!plain_string(key)) return false;
            ws();
            if (!at(':')) return false;
            ++p_;
            ws();
            if (key == "cidr") {
                if (have_cidr || !plain_string(cidr_text)) return false;
                have_cidr = true;
            } else if (key == "protocol") {
                std::string_view name;
                if (protocol || !plain_string(name)) return false;
                protocol = protocol_of(name);
                if (!protocol) return false;
            } else if (key == "ports") {
                if (have_ports || !allow_ports(ports)) return false;
                have_ports = true;
            } else {
                return false;
            }
            ws();
            if (at(',')) {
                ++p_;
                ws();
                continue;
            }
            if (!at('}')) return false;
            ++p_;
            break;
        }
        if (!have_cidr || !protocol || have_ports != (*protocol != Protocol::any)) return false;
        if (!plain_ipv4_cidr(cidr_text, entry.cidr)) {
            std::string why;
            auto cidr = parse_cidr(cidr_text, why);
            if (!cidr) return false;
            entry.cidr = *cidr;
        }
        entry.protocol = *protocol;
        // One port is merged already.
        entry.ports = ports.size() == 1 ? std::move(ports) : merge_ports(std::move(ports));
        return true;
    }

    // A non-empty array of ports 1-65535 (plain integers) and "lo-hi" strings.
    bool allow_ports(std::vector<PortRange>& ports) {
        if (!at('[')) return false;
        ++p_;
        ws();
        for (;;) {
            if (p_ != end_ && *p_ >= '1' && *p_ <= '9') {
                const char* digits = p_;
                uint32_t port = 0;
                while (p_ != end_ && is_digit(*p_) && p_ - digits < 5) port = port * 10 + (*p_++ - '0');
                if (at('.') || at('e') || at('E') || (p_ != end_ && is_digit(*p_)) || port > 65535) return false;
                ports.push_back(PortRange{static_cast<uint16_t>(port), static_cast<uint16_t>(port)});
            } else {
                std::string_view text;
                if (!plain_string(text)) return false;
                std::string why;
                auto range = parse_port_range(text, why);
                if (!range) return false;
                ports.push_back(*range);
            }
            ws();
            if (at(',')) {
                ++p_;
                ws();
                continue;
            }
            if (!at(']')) return false;
            ++p_;
            return true;
        }
    }

    // --- scanning --------------------------------------------------------------------
    static constexpr const char* kKindString = "a string";

    // One value of any kind but containers: skipped (a string decoded into
    // `text` when given), its kind returned.
    const char* scalar(std::string* text) {
        if (p_ == end_) fail_expected("a JSON value");
        switch (*p_) {
            case '"':
                if (text) string_body<true>(text);
                else string_body<false>(nullptr);
                return kKindString;
            case 't': literal("true"); return "a boolean";
            case 'f': literal("false"); return "a boolean";
            case 'n': literal("null"); return "null";
            default:
                if (*p_ != '-' && !is_digit(*p_)) fail_expected("a JSON value");
                number(nullptr);
                return "a number";
        }
    }

    void scan_document(bool& is_object, const std::function<void(const TopMember&)>& member) {
        // The containers not yet closed: true for an object.
        std::vector<bool> open;
        TopMember top;
        std::string top_string;
        ws();
        is_object = at('{');
        for (;;) {
            // A value starts here.
            const bool top_member = open.size() == 1 && open[0];
            if (at('{') || at('[')) {
                const bool is_obj = *p_ == '{';
                if (top_member) {
                    top.kind = is_obj ? "an object" : "an array";
                    top.string_value = nullptr;
                    member(top);
                }
                ++p_;
                ws();
                if (at(is_obj ? '}' : ']')) {
                    ++p_;
                } else {
                    open.push_back(is_obj);
                    if (is_obj) scan_key(open, top);
                    continue;
                }
            } else if (top_member) {
                top_string.clear();
                top.kind = scalar(&top_string);
                top.string_value = top.kind == kKindString ? &top_string : nullptr;
                member(top);
            } else {
                scalar(nullptr);
            }
            // The value ended: close what it ended, or go on to the next one.
            for (;;) {
                if (open.empty()) return end_of_document();
                ws();
                if (at(',')) {
                    ++p_;
                    ws();
                    if (open.back()) scan_key(open, top);
                    break;
                }
                if (at(open.back() ? '}' : ']')) {
                    ++p_;
                    open.pop_back();
                    continue;
                }
                fail_expected(open.back() ? "',' or '}' after an object member" : "',' or ']' after an array element");
            }
        }
    }

    // At a key of the innermost open object: reads it and the colon.
    void scan_key(const std::vector<bool>& open, TopMember& top) {
        if (!at('"')) fail_expected("a key (a string)");
        if (open.size() == 1) {
            top.key.clear();
            string_body<true>(&top.key);
        } else {
            string_body<false>(nullptr);
        }
        ws();
        if (!at(':')) fail_expected("':' after an object key");
        ++p_;
        ws();
    }
};

}  // namespace

nlohmann::json read_json(std::string_view text) { return Reader(text).document(nullptr); }

nlohmann::json read_stdin_json(std::string_view text, DecodedAllow& allow) { return Reader(text).document(&allow); }

std::string scan_json(std::string_view text, bool& is_object, const std::function<void(const TopMember&)>& member) {
    return Reader(text).scan(is_object, member);
}

}  // namespace ef::config
