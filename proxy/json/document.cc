// Parsing and RFC 6901 lookup over the rapidjson DOM, plus the value
// comparisons shared by validation and rules.
#include "proxy/json/document.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>

namespace airbag::json {
namespace {

// Iterative parsing keeps a hostile "[[[[..." body from exhausting the stack;
// full precision makes 1.1, 1.10 and 11e-1 the very same double, which the
// canonical cache key relies on.
constexpr unsigned kParseFlags = rapidjson::kParseNanAndInfFlag | rapidjson::kParseIterativeFlag |
                                 rapidjson::kParseFullPrecisionFlag;

// Compares a member name with one still-escaped pointer token.
bool tokenEquals(std::string_view token, const char* name, size_t name_len) {
  size_t n = 0;
  for (size_t i = 0; i < token.size(); ++i, ++n) {
    char c = token[i];
    if (c == '~') {
      if (i + 1 >= token.size()) return false;
      c = token[i + 1] == '0' ? '~' : token[i + 1] == '1' ? '/' : '\0';
      if (c == '\0') return false;
      ++i;
    }
    if (n >= name_len || name[n] != c) return false;
  }
  return n == name_len;
}

// Parses an RFC 6901 array index: "0" or digits without a leading zero.
bool parseIndex(std::string_view token, rapidjson::SizeType* out) {
  if (token.empty() || token.size() > 10) return false;
  if (token.size() > 1 && token[0] == '0') return false;
  uint64_t v = 0;
  for (char c : token) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v > UINT32_MAX) return false;
  *out = static_cast<rapidjson::SizeType>(v);
  return true;
}

long double asLongDouble(const rapidjson::Value& v) {
  if (v.IsInt64()) return static_cast<long double>(v.GetInt64());
  if (v.IsUint64()) return static_cast<long double>(v.GetUint64());
  return static_cast<long double>(v.GetDouble());
}

// What rapidjson 1.1.0 cannot be trusted with, found by fuzzing; no such
// text is a request a model needs, and reading it as not JSON keeps the
// canonical cache key a fixed point (such a body is keyed raw).
//  - A NaN or Infinity (or Inf) literal that runs on into a fraction or an
//    exponent ("NaNe1", "-Infinity.5"): rapidjson reads on and, with full
//    precision, asserts (with NDEBUG, reads before its digit buffer).
//  - A number "0." and zeros that, with its exponent, fall below 1e-300
//    ("0.000...0003e-250"): the full-precision reader indexes its
//    power-of-ten table far out of bounds (a crash).
// One pass over the text outside strings looks for both. At `i`, each check
// returns true when it found its case, and otherwise where to go on from.

bool nonFiniteRunsOn(std::string_view text, size_t i, size_t* next) {
  size_t end;
  if (text.compare(i, 3, "NaN") == 0)
    end = i + 3;
  else if (text.compare(i, 8, "Infinity") == 0)
    end = i + 8;
  else if (text.compare(i, 3, "Inf") == 0)  // rapidjson's short spelling
    end = i + 3;
  else
    return false;
  *next = end - 1;
  return end < text.size() && (text[end] == '.' || text[end] == 'e' || text[end] == 'E' ||
                               (text[end] >= '0' && text[end] <= '9'));
}

bool tinyFraction(std::string_view text, size_t i, size_t* next) {
  if (text[i] != '.' || i == 0 || text[i - 1] != '0' ||
      (i >= 2 && text[i - 2] >= '0' && text[i - 2] <= '9'))
    return false;
  size_t j = i + 1;
  int64_t zeros = 0;
  while (j < text.size() && text[j] == '0') ++zeros, ++j;
  while (j < text.size() && text[j] >= '0' && text[j] <= '9') ++j;
  int64_t exponent = 0;
  if (j < text.size() && (text[j] == 'e' || text[j] == 'E')) {
    ++j;
    bool negative = j < text.size() && text[j] == '-';
    if (j < text.size() && (text[j] == '-' || text[j] == '+')) ++j;
    while (j < text.size() && text[j] >= '0' && text[j] <= '9') {
      if (exponent < 100000) exponent = exponent * 10 + (text[j] - '0');
      ++j;
    }
    if (negative) exponent = -exponent;
  }
  *next = j - 1;
  return zeros > 0 && exponent - zeros < -300;
}

bool tripsRapidjson(std::string_view text) {
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
      continue;
    }
    size_t next = i;
    if (nonFiniteRunsOn(text, i, &next) || tinyFraction(text, i, &next)) return true;
    i = next;
  }
  return false;
}

}  // namespace

Document Document::parse(std::string_view text) {
  Document d;
  d.text_size_ = text.size();
  if (tripsRapidjson(text)) return d;
  d.doc_.Parse<kParseFlags>(text.data(), text.size());
  d.ok_ = !d.doc_.HasParseError();
  return d;
}

Document::Document(Document&& other) noexcept
    : doc_(std::move(other.doc_)), text_size_(other.text_size_), ok_(other.ok_) {
  other.ok_ = false;
}

Document& Document::operator=(Document&& other) noexcept {
  if (this != &other) {
    doc_ = std::move(other.doc_);
    text_size_ = other.text_size_;
    ok_ = other.ok_;
    other.ok_ = false;
  }
  return *this;
}

const rapidjson::Value* Document::find(std::string_view pointer) const {
  if (!ok_) return nullptr;
  return findPointer(doc_, pointer);
}

const rapidjson::Value* findPointer(const rapidjson::Value& root, std::string_view pointer) {
  const rapidjson::Value* cur = &root;
  size_t pos = 0;
  if (!pointer.empty() && pointer[0] != '/') return nullptr;
  while (pos < pointer.size()) {
    // pointer[pos] == '/': the token runs to the next '/'.
    const size_t start = pos + 1;
    size_t end = pointer.find('/', start);
    if (end == std::string_view::npos) end = pointer.size();
    const std::string_view token = pointer.substr(start, end - start);
    pos = end;
    if (cur->IsObject()) {
      const rapidjson::Value* next = nullptr;
      for (auto m = cur->MemberBegin(); m != cur->MemberEnd(); ++m) {
        if (tokenEquals(token, m->name.GetString(), m->name.GetStringLength())) {
          next = &m->value;
          break;
        }
      }
      if (next == nullptr) return nullptr;
      cur = next;
    } else if (cur->IsArray()) {
      rapidjson::SizeType index = 0;
      if (!parseIndex(token, &index) || index >= cur->Size()) return nullptr;
      cur = &(*cur)[index];
    } else {
      return nullptr;
    }
  }
  return cur;
}

bool isValidPointer(std::string_view pointer) {
  if (pointer.empty()) return true;
  if (pointer[0] != '/') return false;
  for (size_t i = 0; i < pointer.size(); ++i) {
    if (pointer[i] != '~') continue;
    if (i + 1 >= pointer.size() || (pointer[i + 1] != '0' && pointer[i + 1] != '1')) return false;
  }
  return true;
}

int compareNumbers(const rapidjson::Value& a, const rapidjson::Value& b) {
  if (a.IsInt64() && b.IsInt64()) {
    const int64_t x = a.GetInt64(), y = b.GetInt64();
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.IsUint64() && b.IsUint64()) {
    const uint64_t x = a.GetUint64(), y = b.GetUint64();
    return x < y ? -1 : x > y ? 1 : 0;
  }
  // Mixed int64/uint64 (one negative, one above INT64_MAX) or any double:
  // long double holds every int64, uint64 and double exactly.
  const long double x = asLongDouble(a), y = asLongDouble(b);
  if (std::isnan(x) || std::isnan(y)) return 2;
  return x < y ? -1 : x > y ? 1 : 0;
}

bool valueEquals(const rapidjson::Value& a, const rapidjson::Value& b) {
  if (a.GetType() != b.GetType()) return false;
  switch (a.GetType()) {
    case rapidjson::kNullType:
    case rapidjson::kFalseType:
    case rapidjson::kTrueType:
      return true;
    case rapidjson::kNumberType:
      return compareNumbers(a, b) == 0;
    case rapidjson::kStringType:
      return a.GetStringLength() == b.GetStringLength() &&
             std::memcmp(a.GetString(), b.GetString(), a.GetStringLength()) == 0;
    case rapidjson::kArrayType:
      if (a.Size() != b.Size()) return false;
      for (rapidjson::SizeType i = 0; i < a.Size(); ++i) {
        if (!valueEquals(a[i], b[i])) return false;
      }
      return true;
    case rapidjson::kObjectType:
      if (a.MemberCount() != b.MemberCount()) return false;
      for (auto m = a.MemberBegin(); m != a.MemberEnd(); ++m) {
        auto other = b.FindMember(m->name);
        if (other == b.MemberEnd() || !valueEquals(m->value, other->value)) return false;
      }
      return true;
  }
  return false;
}

}  // namespace airbag::json
