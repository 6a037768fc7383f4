// Canonical JSON writer for cache keys (see canonical.h for the rules).
#include "proxy/json/canonical.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <string_view>

namespace airbag::json {
namespace {

using Member = rapidjson::Value::ConstMemberIterator;

// Doubles at or above this print in exponent form; below it every integral
// double has at most 21 digits, matching what JavaScript prints.
constexpr double kPlainIntegerLimit = 1e21;
// Objects up to this many members are sorted on the stack.
constexpr size_t kInlineMembers = 32;

class CanonicalWriter {
 public:
  CanonicalWriter(std::string* out, const std::vector<const rapidjson::Value*>& skip)
      : out_(*out), skip_(skip) {}

  // Returns false when nesting exceeds kMaxCanonicalDepth.
  bool write(const rapidjson::Value& v, int depth) {
    switch (v.GetType()) {
      case rapidjson::kNullType:
        out_.append("null");
        return true;
      case rapidjson::kFalseType:
        out_.append("false");
        return true;
      case rapidjson::kTrueType:
        out_.append("true");
        return true;
      case rapidjson::kNumberType:
        writeNumber(v);
        return true;
      case rapidjson::kStringType:
        writeString(v.GetString(), v.GetStringLength());
        return true;
      case rapidjson::kArrayType:
        return writeArray(v, depth);
      case rapidjson::kObjectType:
        return writeObject(v, depth);
    }
    return true;
  }

 private:
  bool skipped(const rapidjson::Value& v) const {
    return std::find(skip_.begin(), skip_.end(), &v) != skip_.end();
  }

  bool writeArray(const rapidjson::Value& v, int depth) {
    if (depth >= kMaxCanonicalDepth) return false;
    out_.push_back('[');
    bool first = true;
    for (const auto& e : v.GetArray()) {
      if (!skip_.empty() && skipped(e)) continue;
      if (!first) out_.push_back(',');
      first = false;
      if (!write(e, depth + 1)) return false;
    }
    out_.push_back(']');
    return true;
  }

  bool writeObject(const rapidjson::Value& v, int depth) {
    if (depth >= kMaxCanonicalDepth) return false;
    const size_t n = v.MemberCount();
    Member inline_members[kInlineMembers];
    std::vector<Member> heap_members;
    Member* members = inline_members;
    if (n > kInlineMembers) {
      heap_members.resize(n);
      members = heap_members.data();
    }
    size_t count = 0;
    for (auto m = v.MemberBegin(); m != v.MemberEnd(); ++m) {
      if (!skip_.empty() && skipped(m->value)) continue;
      members[count++] = m;
    }
    sortByName(members, count);
    out_.push_back('{');
    for (size_t i = 0; i < count; ++i) {
      if (i > 0) out_.push_back(',');
      writeString(members[i]->name.GetString(), members[i]->name.GetStringLength());
      out_.push_back(':');
      if (!write(members[i]->value, depth + 1)) return false;
    }
    out_.push_back('}');
    return true;
  }

  static bool nameLess(const Member& a, const Member& b) {
    const std::string_view x(a->name.GetString(), a->name.GetStringLength());
    const std::string_view y(b->name.GetString(), b->name.GetStringLength());
    return x < y;  // char_traits<char> compares as unsigned char: byte order
  }

  // Stable, so duplicate names keep document order. Insertion sort for the
  // usual small object: std::stable_sort would allocate a buffer each time.
  static void sortByName(Member* members, size_t count) {
    if (count > kInlineMembers) {
      std::stable_sort(members, members + count, nameLess);
      return;
    }
    for (size_t i = 1; i < count; ++i) {
      const Member m = members[i];
      size_t j = i;
      for (; j > 0 && nameLess(m, members[j - 1]); --j) members[j] = members[j - 1];
      members[j] = m;
    }
  }

  void writeNumber(const rapidjson::Value& v) {
    char buf[64];
    std::to_chars_result r;
    if (v.IsInt64()) {
      r = std::to_chars(buf, buf + sizeof(buf), v.GetInt64());
    } else if (v.IsUint64()) {
      r = std::to_chars(buf, buf + sizeof(buf), v.GetUint64());
    } else {
      const double d = v.GetDouble();
      if (std::isnan(d)) {
        out_.append("NaN");
        return;
      }
      if (std::isinf(d)) {
        out_.append(d > 0 ? "Infinity" : "-Infinity");
        return;
      }
      if (d == 0) {
        out_.push_back('0');  // also -0
        return;
      }
      if (std::trunc(d) == d && std::fabs(d) < kPlainIntegerLimit) {
        r = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::fixed);
      } else {
        r = std::to_chars(buf, buf + sizeof(buf), d);  // shortest round-trip
      }
    }
    out_.append(buf, static_cast<size_t>(r.ptr - buf));
  }

  void writeString(const char* s, size_t len) {
    static constexpr char kHex[] = "0123456789abcdef";
    out_.push_back('"');
    size_t run = 0;  // start of the current run of bytes copied verbatim
    for (size_t i = 0; i < len; ++i) {
      const unsigned char c = static_cast<unsigned char>(s[i]);
      if (c >= 0x20 && c != '"' && c != '\\') continue;
      out_.append(s + run, i - run);
      run = i + 1;
      switch (c) {
        case '"':
          out_.append("\\\"");
          break;
        case '\\':
          out_.append("\\\\");
          break;
        case '\b':
          out_.append("\\b");
          break;
        case '\f':
          out_.append("\\f");
          break;
        case '\n':
          out_.append("\\n");
          break;
        case '\r':
          out_.append("\\r");
          break;
        case '\t':
          out_.append("\\t");
          break;
        default: {
          const char esc[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xf]};
          out_.append(esc, sizeof(esc));
        }
      }
    }
    out_.append(s + run, len - run);
    out_.push_back('"');
  }

  std::string& out_;
  const std::vector<const rapidjson::Value*>& skip_;
};

}  // namespace

std::optional<std::string> canonicalize(const Document& doc,
                                        const std::vector<std::string>& ignore_pointers) {
  if (!doc.ok()) return std::nullopt;
  std::vector<const rapidjson::Value*> skip;
  if (!ignore_pointers.empty()) {
    skip.reserve(ignore_pointers.size());
    for (const std::string& p : ignore_pointers) {
      if (const rapidjson::Value* v = doc.find(p)) skip.push_back(v);
    }
  }
  std::string out;
  if (std::find(skip.begin(), skip.end(), &doc.root()) != skip.end()) return out;
  out.reserve(doc.textSize());
  CanonicalWriter writer(&out, skip);
  if (!writer.write(doc.root(), 0)) return std::nullopt;
  return out;
}

}  // namespace airbag::json
