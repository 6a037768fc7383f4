// Cheap text building for the data plane: decimal and hex numbers appended to
// a reused std::string, without printf or temporary strings. (Debian's
// abseil has its own string_view type, so its StrCat does not take
// std::string_view; these helpers keep the hot path on std types.)
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

namespace airbag::http {

inline void appendDecimal(std::string& out, int64_t v) {
  char buf[24];
  char* end = buf + sizeof(buf);
  char* p = end;
  uint64_t u = v < 0 ? 0 - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
  do {
    *--p = static_cast<char>('0' + u % 10);
    u /= 10;
  } while (u != 0);
  if (v < 0) *--p = '-';
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
