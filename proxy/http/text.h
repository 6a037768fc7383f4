// Cheap text building for the data plane: decimal and hex numbers appended to
// a reused std::string, without printf or temporary strings. (Debian's
// abseil has its own string_view type, so its StrCat does not take
// std::string_view; these helpers keep the hot path on std types.)
#pragma once

#include <cassert>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>

namespace airbag::http {

// Writes `v` in decimal so that it ends just before `end`; returns where it
// starts. At most 20 characters.
inline char* decimalBefore(char* end, int64_t v) {
  char* p = end;
  uint64_t u = v < 0 ? 0 - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
  do {
    *--p = static_cast<char>('0' + u % 10);
    u /= 10;
  } while (u != 0);
  if (v < 0) *--p = '-';
  return p;
}

inline void appendDecimal(std::string& out, int64_t v) {
  char buf[24];
  char* end = buf + sizeof(buf);
  char* p = decimalBefore(end, v);
  out.append(p, static_cast<size_t>(end - p));
}

inline void appendHexNumber(std::string& out, uint64_t v) {
  static constexpr char kHex[] = "0123456789abcdef";
  char buf[16];
  char* end = buf + sizeof(buf);
  char* p = end;
  do {
    *--p = kHex[v & 0xf];
    v >>= 4;
  } while (v != 0);
  out.append(p, static_cast<size_t>(end - p));
}

// Appends every argument: string-like ones verbatim, integers in decimal.
template <typename... Args>
void append(std::string& out, const Args&... args) {
  auto one = [&out](const auto& a) {
    using R = std::remove_cv_t<std::remove_reference_t<decltype(a)>>;
    using T = std::decay_t<decltype(a)>;
    if constexpr (std::is_array_v<R>)
      out.append(a, sizeof(R) - 1);  // a string literal: its length is known
    else if constexpr (std::is_integral_v<T> && !std::is_same_v<T, char>)
      appendDecimal(out, static_cast<int64_t>(a));
    else if constexpr (std::is_same_v<T, char>)
      out.push_back(a);
    else
      out.append(std::string_view(a));
  };
  (one(args), ...);
}

// Appends to a string through a raw cursor after growing it once. A message
// head is some thirty small pieces; one std::string::append per piece costs
// more than the bytes it copies, so a head writer sums the variable sizes,
// adds a fixed slack for literals and numbers, and writes every piece with a
// plain copy. The string is trimmed to what was written when the writer goes.
// Writing more than `bound` bytes is a bug (asserted in debug builds).
class BoundedWriter {
 public:
  BoundedWriter(std::string& out, size_t bound) : out_(out) {
    size_t start = out.size();
    out.resize(start + bound);
    p_ = out.data() + start;
    end_ = p_ + bound;
  }
  ~BoundedWriter() { out_.resize(static_cast<size_t>(p_ - out_.data())); }
  BoundedWriter(const BoundedWriter&) = delete;
  BoundedWriter& operator=(const BoundedWriter&) = delete;

  // As http::append: string-like arguments verbatim, integers in decimal.
  template <typename... Args>
  void add(const Args&... args) {
    (one(args), ...);
  }

  // At most this many bytes for a decimal number.
  static constexpr size_t kMaxDecimal = 20;

 private:
  template <typename A>
  void one(const A& a) {
    using R = std::remove_cv_t<std::remove_reference_t<A>>;
    using T = std::decay_t<A>;
    if constexpr (std::is_array_v<R>) {
      copy(a, sizeof(R) - 1);  // a string literal: a copy of known length
    } else if constexpr (std::is_integral_v<T> && !std::is_same_v<T, char>) {
      char buf[24];
      char* e = buf + sizeof(buf);
      char* q = decimalBefore(e, static_cast<int64_t>(a));
      copy(q, static_cast<size_t>(e - q));
    } else if constexpr (std::is_same_v<T, char>) {
      copy(&a, 1);
    } else {
      std::string_view s(a);
      copy(s.data(), s.size());
    }
  }
  void copy(const char* s, size_t n) {
    assert(static_cast<size_t>(end_ - p_) >= n && "BoundedWriter: bound too small");
    std::memcpy(p_, s, n);
    p_ += n;
  }

  std::string& out_;
  char* p_;
  char* end_;
};

// ASCII case-insensitive prefix test.
inline bool startsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    char a = s[i], b = prefix[i];
    if (a >= 'A' && a <= 'Z') a = static_cast<char>(a + 32);
    if (b >= 'A' && b <= 'Z') b = static_cast<char>(b + 32);
    if (a != b) return false;
  }
  return true;
}

}  // namespace airbag::http
