// parse_json(): JSON text -> document, under the size and nesting limits and
// without silently resolving repeated keys.
#include "cni/error.h"
#include "config/config.h"

namespace ef::config {

namespace {

using nlohmann::json;

// Checked before parsing: a hostile document never becomes a deep tree that
// recursive code (dump, comparison, our own walkers) would later descend.
std::optional<std::size_t> nesting_exceeded_at(std::string_view text, std::size_t max_depth) {
    std::size_t depth = 0;
    bool in_string = false;
    bool escaped = false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (in_string) {
            if (escaped) escaped = false;
            else if (c == '\\') escaped = true;
            else if (c == '"') in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max_depth) return i;
        } else if ((c == ']' || c == '}') && depth > 0) {
            --depth;
        }
    }
    return std::nullopt;
}

// A SAX handler that builds the document as json::parse does, but refuses a
// key its object already holds: nlohmann would keep the last one silently,
// and two "profile" keys in one selector must not be settled by parser order.
// (json::parse with a callback can do this too, but costs 6x the parse time.)
class DocumentBuilder {
  public:
    explicit DocumentBuilder(json& root) : root_(root) {}

    bool null() { return place(nullptr); }
    bool boolean(bool v) { return place(v); }
    bool number_integer(json::number_integer_t v) { return place(v); }
    bool number_unsigned(json::number_unsigned_t v) { return place(v); }
    bool number_float(json::number_float_t v, const json::string_t&) { return place(v); }
    bool string(json::string_t& v) { return place(std::move(v)); }
    bool binary(json::binary_t& v) { return place(json::binary(std::move(v))); }

    bool start_object(std::size_t) {
        open_.push_back(slot(json::object()));
        return true;
    }
    bool key(json::string_t& k) {
        json& object = *open_.back();
        if (object.contains(k))
            throw cni::Error(cni::kDecodeFailure, "key \"" + k + "\" appears twice in one JSON object; remove one");
        member_ = &object[k];
        return true;
    }
    bool end_object() { return close(); }
    bool start_array(std::size_t) {
        open_.push_back(slot(json::array()));
        return true;
    }
    bool end_array() { return close(); }

    template <class Exception>
    bool parse_error(std::size_t, const std::string&, const Exception& e) {
        throw e;
    }

  private:
    bool place(json v) {
        slot(std::move(v));
        return true;
    }
    bool close() {
        open_.pop_back();
        return true;
    }
    // Puts `v` where the parser is: the root, the next array element, or the
    // member whose key was just read.
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

    json& root_;
    std::vector<json*> open_;  // the objects and arrays not yet closed
    json* member_ = nullptr;
};

// "[json.exception.parse_error.101] parse error at ..." -> "parse error at ..."
std::string without_exception_tag(const char* what) {
    std::string text = what;
    if (!text.empty() && text.front() == '[') {
        const auto end = text.find("] ");
        if (end != std::string::npos) text.erase(0, end + 2);
    }
    return text;
}

}  // namespace

nlohmann::json parse_json(std::string_view bytes) {
    if (bytes.size() > kMaxInputBytes)
        throw cni::Error(cni::kDecodeFailure,
                         "input is larger than the limit of " + std::to_string(kMaxInputBytes) + " bytes (1 MiB)");
    if (auto at = nesting_exceeded_at(bytes, kMaxJsonDepth))
        throw cni::Error(cni::kDecodeFailure, "JSON nesting is deeper than " + std::to_string(kMaxJsonDepth) +
                                                  " levels (at byte " + std::to_string(*at + 1) + ")");
    json doc;
    DocumentBuilder builder(doc);
    try {
        json::sax_parse(bytes, &builder);
    } catch (const json::parse_error& e) {
        throw cni::Error(cni::kDecodeFailure, "input is not valid JSON (byte " + std::to_string(e.byte) +
                                                  "): " + without_exception_tag(e.what()));
    } catch (const json::out_of_range& e) {
        // A number beyond double's range (1e400): nlohmann reports it as out_of_range, not parse_error.
        throw cni::Error(cni::kDecodeFailure, "input is not valid JSON: " + without_exception_tag(e.what()));
    }
    return doc;
}

}  // namespace ef::config
