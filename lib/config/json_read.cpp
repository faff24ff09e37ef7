// read_json(), read_stdin_json(), scan_json() on simdjson's DOM. simdjson
// validates the text (structure, numbers, escapes, UTF-8) and builds its tape;
// the tape becomes an nlohmann::json here, with the two rules simdjson does
// not have: a key repeated in one object is refused, and so is nesting beyond
// kMaxJsonDepth. A text simdjson refuses is read again by nlohmann's SAX
// parser, which says where and why, and which accepts the few texts nlohmann
// reads but simdjson cannot represent (integers beyond 64 bits: floats in
// nlohmann) or does not expect (nesting beyond its own limit): the accepted
// language stays nlohmann's, which tests/fuzz compares against.
#include "config/json_read.h"

#include <simdjson.h>

#include <optional>

#include "cni/error.h"
#include "config/values.h"

namespace ef::config {

static_assert(kJsonPadding >= simdjson::SIMDJSON_PADDING);

namespace {

using nlohmann::json;
namespace dom = simdjson::dom;

constexpr std::string_view kBom = "\xEF\xBB\xBF";
// simdjson's parser refuses nesting beyond its DEFAULT_MAX_DEPTH (1024):
// deeper texts take the nlohmann path (the envelope's scan has no limit).
static_assert(simdjson::DEFAULT_MAX_DEPTH > kMaxJsonDepth);
// An error message quotes at most this much of what nlohmann read.
constexpr std::size_t kMaxMessage = 200;

[[noreturn]] void fail(std::string msg) { throw cni::Error(cni::kDecodeFailure, std::move(msg)); }

std::string repeated_key(std::string_view key) {
    return "key \"" + std::string(key) + "\" appears twice in one JSON object; remove one";
}

// The byte (1-based) of the bracket at which the nesting outside strings
// first passes kMaxJsonDepth, 0 when it never does. Only asked about texts
// whose part up to that bracket is valid JSON (escapes are whole).
std::size_t too_deep_at(std::string_view text) {
    std::size_t depth = 0;
    bool in_string = false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (in_string) {
            if (c == '\\') ++i;
            else if (c == '"') in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > kMaxJsonDepth) return i + 1;
        } else if (c == ']' || c == '}') {
            --depth;
        }
    }
    return 0;
}

[[noreturn]] void fail_too_deep(std::string_view text) {
    fail("JSON nesting is deeper than " + std::to_string(kMaxJsonDepth) + " levels (at byte " +
         std::to_string(too_deep_at(text)) + ")");
}

// nlohmann's explanation without its prefix ("[json.exception.parse_error.101]
// parse error at line 1, column 24: "), bytes outside printable ASCII shown
// as <0xNN> (it quotes the input, which need not be UTF-8 there), cut short.
std::string nlohmann_words(const std::string& what) {
    std::string_view w = what;
    if (w.starts_with("[json.exception.")) {
        const auto close = w.find("] ");
        if (close != std::string_view::npos) w.remove_prefix(close + 2);
        if (w.starts_with("parse error")) {
            const auto colon = w.find(": ");
            if (colon != std::string_view::npos) w.remove_prefix(colon + 2);
        }
    }
    std::string out;
    for (const char ch : w) {
        const auto c = static_cast<unsigned char>(ch);
        if (out.size() >= kMaxMessage) {
            out += "...";
            break;
        }
        if (c >= 0x20 && c < 0x7f) {
            out += ch;
        } else {
            static constexpr char kHex[] = "0123456789ABCDEF";
            out.append("<0x").append(1, kHex[c >> 4]).append(1, kHex[c & 15]).append(">");
        }
    }
    return out;
}

std::string at_byte(std::size_t byte, const std::string& what) {
    return "input is not valid JSON (byte " + std::to_string(byte) + "): " + what;
}

// --- nlohmann's reading, for texts simdjson refuses -------------------------------
// One SAX pass: the document (while it stays within the limits), the top-level
// members (for scan_json), the first repeated key or nesting violation, and
// the syntax error where nlohmann stops. It never recurses, so any depth is
// scanned.
class Fallback {
  public:
    struct Member {
        std::string key;
        std::optional<std::string> string_value;
        const char* kind;
    };

    explicit Fallback(std::string_view text) : text_(text) {
        accepted_ = json::sax_parse(text, this);
        // nlohmann takes a NUL byte outside a string for the end of the
        // input and ignores the rest; a NUL is refused here.
        if (accepted_) {
            if (const auto nul = text.find('\0'); nul != std::string_view::npos)
                syntax_error_ = at_byte(nul + 1, "a NUL byte after the JSON value");
        }
    }

    // read_json's verdict: the document, or the first of its errors.
    json document() {
        if (!limit_error_.empty()) fail(limit_error_);
        if (!syntax_error_.empty()) fail(syntax_error_);
        return std::move(root_);
    }
    // scan_json's: "" or the syntax error.
    const std::string& scan_error() const { return syntax_error_; }
    bool is_object() const { return root_is_object_; }
    const std::vector<Member>& members() const { return members_; }

    // --- nlohmann::json_sax ---
    bool null() { return scalar(nullptr, "null"); }
    bool boolean(bool v) { return scalar(v, "a boolean"); }
    bool number_integer(json::number_integer_t v) { return scalar(v, "a number"); }
    bool number_unsigned(json::number_unsigned_t v) { return scalar(v, "a number"); }
    bool number_float(json::number_float_t v, const json::string_t&) { return scalar(v, "a number"); }
    bool string(json::string_t& v) {
        if (depth_ == 1 && root_is_object_) members_.push_back({top_key_, v, "a string"});
        return place(std::move(v));
    }
    static bool binary(json::binary_t&) { return true; }  // not produced by text input
    bool start_object(std::size_t) { return open(json::value_t::object, "an object"); }
    bool key(json::string_t& k) {
        if (depth_ == 1 && root_is_object_) top_key_ = k;
        if (building()) {
            json& object = *open_.back();
            if (object.contains(k)) stop(repeated_key(k));
            else member_ = &object[k];
        }
        return true;
    }
    bool end_object() { return close(); }
    bool start_array(std::size_t) { return open(json::value_t::array, "an array"); }
    bool end_array() { return close(); }
    template <class Exception>
    bool parse_error(std::size_t position, const std::string&, const Exception& e) {
        syntax_error_ = at_byte(position, nlohmann_words(e.what()));
        return false;
    }

  private:
    bool building() const { return limit_error_.empty(); }
    void stop(std::string why) {
        if (limit_error_.empty()) limit_error_ = std::move(why);
        open_.clear();
    }
    template <class V>
    bool scalar(V&& v, const char* kind) {
        if (depth_ == 1 && root_is_object_) members_.push_back({top_key_, std::nullopt, kind});
        return place(json(std::forward<V>(v)));
    }
    bool place(json v) {
        if (building()) slot(std::move(v));
        return true;
    }
    bool open(json::value_t type, const char* kind) {
        if (depth_ == 0) root_is_object_ = type == json::value_t::object;
        else if (depth_ == 1 && root_is_object_) members_.push_back({top_key_, std::nullopt, kind});
        if (++depth_ > kMaxJsonDepth && building())
            stop("JSON nesting is deeper than " + std::to_string(kMaxJsonDepth) + " levels (at byte " +
                 std::to_string(too_deep_at(text_)) + ")");
        if (building()) open_.push_back(slot(json(type)));
        return true;
    }
    bool close() {
        --depth_;
        if (building()) open_.pop_back();
        return true;
    }
    json* slot(json v) {
        if (open_.empty()) {
            root_ = std::move(v);
            return &root_;
        }
        json& parent = *open_.back();
        if (parent.is_array()) {
            parent.push_back(std::move(v));
            return &parent.back();
        }
        *member_ = std::move(v);
        return member_;
    }

    std::string_view text_;
    bool accepted_ = false;
    json root_;
    std::vector<json*> open_;
    json* member_ = nullptr;
    std::size_t depth_ = 0;
    bool root_is_object_ = false;
    std::string top_key_;
    std::vector<Member> members_;
    std::string limit_error_, syntax_error_;
};

// --- simdjson's tape -> nlohmann::json ----------------------------------------------
std::optional<Protocol> protocol_of(std::string_view name) {
    if (name == "tcp") return Protocol::tcp;
    if (name == "udp") return Protocol::udp;
    if (name == "sctp") return Protocol::sctp;
    if (name == "any") return Protocol::any;
    return std::nullopt;
}

// A port number simdjson typed as an integer, in 1-65535.
std::optional<uint16_t> port_number(dom::element e) {
    uint64_t u = 0;
    if (e.type() == dom::element_type::INT64) {
        int64_t i = 0;
        if (e.get_int64().get(i) || i < 1 || i > 65535) return std::nullopt;
        return static_cast<uint16_t>(i);
    }
    if (e.type() != dom::element_type::UINT64 || e.get_uint64().get(u) || u > 65535) return std::nullopt;
    return static_cast<uint16_t>(u);
}

// A non-empty array of ports 1-65535 (integers) and "lo-hi" strings.
bool allow_ports(dom::element e, std::vector<PortRange>& ports) {
    dom::array list;
    if (e.get_array().get(list) || list.size() == 0) return false;
    for (dom::element p : list) {
        if (auto n = port_number(p)) {
            ports.push_back(PortRange{*n, *n});
            continue;
        }
        std::string_view text;
        if (p.get_string().get(text)) return false;
        std::string why;
        auto range = parse_port_range(text, why);
        if (!range) return false;
        ports.push_back(*range);
    }
    return true;
}

// One element of an allow list that validate() would accept without a
// problem, decoded as read_allow_entry() decodes it; false for anything else
// (it is converted as a plain value and validated as every other).
bool allow_entry(dom::element e, AllowEntry& entry) {
    dom::object fields;
    if (e.get_object().get(fields)) return false;
    std::string_view cidr_text;
    std::optional<Protocol> protocol;
    bool have_cidr = false, have_ports = false;
    std::vector<PortRange> ports;
    for (dom::key_value_pair field : fields) {
        if (field.key == "cidr") {
            if (have_cidr || field.value.get_string().get(cidr_text)) return false;
            have_cidr = true;
        } else if (field.key == "protocol") {
            std::string_view name;
            if (protocol || field.value.get_string().get(name)) return false;
            protocol = protocol_of(name);
            if (!protocol) return false;
        } else if (field.key == "ports") {
            if (have_ports || !allow_ports(field.value, ports)) return false;
            have_ports = true;
        } else {
            return false;
        }
    }
    if (!have_cidr || !protocol || have_ports != (*protocol != Protocol::any)) return false;
    std::string why;
    auto cidr = parse_cidr(cidr_text, why);
    if (!cidr) return false;
    entry.cidr = *cidr;
    entry.protocol = *protocol;
    // One port is merged already.
    entry.ports = ports.size() == 1 ? std::move(ports) : merge_ports(std::move(ports));
    return true;
}

class Converter {
  public:
    Converter(std::string_view text, DecodedAllow* allow) : text_(text), allow_(allow) {}

    json document(dom::element root) {
        if (allow_ && root.type() == dom::element_type::OBJECT) return object(root, 1, Context::stdin_top, nullptr);
        return value(root, 0);
    }

  private:
    // Where an object is, for the allow path: stdin's top level, its
    // "profiles", or one profile.
    enum class Context : uint8_t { plain, stdin_top, profiles, profile };

    // Not `return {...}`: a braced json of one value is an array of it.
    // NOLINTBEGIN(modernize-return-braced-init-list)
    json value(dom::element e, std::size_t depth) {
        switch (e.type()) {
            case dom::element_type::OBJECT: return object(e, depth + 1, Context::plain, nullptr);
            case dom::element_type::ARRAY: return array(e, depth + 1);
            case dom::element_type::STRING: return json(std::string(e.get_string().value_unsafe()));
            case dom::element_type::INT64: {
                const int64_t i = e.get_int64().value_unsafe();
                // nlohmann types a non-negative integer as unsigned.
                return i < 0 ? json(i) : json(static_cast<uint64_t>(i));
            }
            case dom::element_type::UINT64: return json(e.get_uint64().value_unsafe());
            case dom::element_type::DOUBLE: return json(e.get_double().value_unsafe());
            case dom::element_type::BOOL: return json(e.get_bool().value_unsafe());
            case dom::element_type::NULL_VALUE: return json(nullptr);
        }
        return json(nullptr);
    }
    // NOLINTEND(modernize-return-braced-init-list)

    void enter(std::size_t depth) const {
        if (depth > kMaxJsonDepth) fail_too_deep(text_);
    }

    json object(dom::element e, std::size_t depth, Context ctx, const std::string* profile) {
        enter(depth);
        json out(json::value_t::object);
        auto& members = *out.get_ptr<json::object_t*>();
        const dom::object fields = e.get_object().value_unsafe();
        for (dom::key_value_pair field : fields) {
            auto [slot, inserted] = members.emplace(std::string(field.key), json());
            // nlohmann would keep the last one silently, and two "profile"
            // keys in one selector must not be settled by parser order.
            if (!inserted) fail(repeated_key(field.key));
            slot->second = member(field.value, depth, ctx, slot->first, profile);
        }
        return out;
    }

    json member(dom::element v, std::size_t depth, Context ctx, const std::string& key, const std::string* profile) {
        const bool is_object = v.type() == dom::element_type::OBJECT;
        if (ctx == Context::stdin_top && key == "profiles" && is_object)
            return object(v, depth + 1, Context::profiles, nullptr);
        if (ctx == Context::profiles && is_object) return object(v, depth + 1, Context::profile, &key);
        if (ctx == Context::profile && key == "allow" && v.type() == dom::element_type::ARRAY)
            return allow_array(v, depth + 1, *profile);
        return value(v, depth);
    }

    json array(dom::element e, std::size_t depth) {
        enter(depth);
        json out(json::value_t::array);
        auto& elements = *out.get_ptr<json::array_t*>();
        const dom::array list = e.get_array().value_unsafe();
        elements.reserve(list.size());
        for (dom::element child : list) elements.push_back(value(child, depth));
        return out;
    }

    json allow_array(dom::element e, std::size_t depth, const std::string& profile) {
        enter(depth);
        auto& decoded = allow_->by_profile[profile];
        json out(json::value_t::array);
        auto& elements = *out.get_ptr<json::array_t*>();
        const dom::array list = e.get_array().value_unsafe();
        elements.reserve(list.size());
        decoded.reserve(decoded.size() + list.size());
        for (dom::element child : list) {
            if (AllowEntry entry; allow_entry(child, entry)) {
                decoded.push_back(std::move(entry));
                elements.emplace_back(json::value_t::discarded);
            } else {
                elements.push_back(value(child, depth));
            }
        }
        return out;
    }

    std::string_view text_;
    DecodedAllow* allow_;
};

const char* kind_of(dom::element_type t) {
    switch (t) {
        case dom::element_type::STRING: return "a string";
        case dom::element_type::OBJECT: return "an object";
        case dom::element_type::ARRAY: return "an array";
        case dom::element_type::BOOL: return "a boolean";
        case dom::element_type::NULL_VALUE: return "null";
        default: return "a number";
    }
}

}  // namespace

struct JsonText::State {
    dom::parser parser{};
    dom::element root{};
    simdjson::error_code error = simdjson::SUCCESS;
    std::optional<Fallback> fallback;

    Fallback& nlohmann_reading(std::string_view text) {
        if (!fallback) fallback.emplace(text);
        return *fallback;
    }
};

JsonText::JsonText(std::string_view text, bool padded) : text_(text), state_(std::make_unique<State>()) {
    std::string_view body = text;
    // nlohmann skips a byte-order mark at the start; simdjson does not.
    if (body.starts_with(kBom)) body.remove_prefix(kBom.size());
    State& s = *state_;
    // An empty view may hold a null pointer, which simdjson would pass to memcpy;
    // a one-byte empty string stands in, copied (it has no padding after it).
    static constexpr char kEmpty[1] = "";
    const bool empty = body.empty();
    s.error = s.parser.parse(empty ? kEmpty : body.data(), body.size(), empty || !padded).get(s.root);
}

JsonText::~JsonText() = default;

namespace {

json read(const JsonText& text, DecodedAllow* allow) {
    JsonText::State& s = text.state();
    if (s.error) return s.nlohmann_reading(text.text()).document();
    return Converter(text.text(), allow).document(s.root);
}

}  // namespace

nlohmann::json read_json(std::string_view text) { return read(JsonText(text), nullptr); }

nlohmann::json read_stdin_json(std::string_view text, DecodedAllow& allow) { return read(JsonText(text), &allow); }

nlohmann::json read_stdin_json(const JsonText& text, DecodedAllow& allow) { return read(text, &allow); }

std::string scan_json(const JsonText& text, bool& is_object, const std::function<void(const TopMember&)>& member) {
    JsonText::State& s = text.state();
    TopMember top;
    std::string value;
    if (s.error) {
        const Fallback& f = s.nlohmann_reading(text.text());
        is_object = f.is_object();
        for (const auto& m : f.members()) {
            top.key = m.key;
            if (m.string_value) value = *m.string_value;
            top.string_value = m.string_value ? &value : nullptr;
            top.kind = m.kind;
            member(top);
        }
        return f.scan_error();
    }
    is_object = s.root.type() == dom::element_type::OBJECT;
    if (!is_object) return "";
    const dom::object fields = s.root.get_object().value_unsafe();
    for (dom::key_value_pair field : fields) {
        top.key = field.key;
        std::string_view sv;
        const bool is_string = !field.value.get_string().get(sv);
        if (is_string) value = sv;
        top.string_value = is_string ? &value : nullptr;
        top.kind = kind_of(field.value.type());
        member(top);
    }
    return "";
}

std::string scan_json(std::string_view text, bool& is_object, const std::function<void(const TopMember&)>& member) {
    return scan_json(JsonText(text), is_object, member);
}

}  // namespace ef::config
