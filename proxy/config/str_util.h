// String glue for proxy/config. Debian's abseil has its own absl::string_view
// (not std::string_view), so absl::StrCat and friends do not take our
// std::string_view arguments; these small helpers bridge the two.
#pragma once

#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace airbag::config {

inline absl::string_view toAbsl(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

namespace str_internal {
inline void append(std::string& out, std::string_view s) { out.append(s); }
inline void append(std::string& out, const char* s) { out.append(s); }
inline void append(std::string& out, absl::string_view s) { out.append(s.data(), s.size()); }
inline void append(std::string& out, const std::string& s) { out.append(s); }
inline void append(std::string& out, char c) { out.push_back(c); }
template <typename T, typename = std::enable_if_t<std::is_arithmetic_v<T>>>
void append(std::string& out, T v) {
  absl::StrAppend(&out, v);
}
}  // namespace str_internal

// Concatenates strings (std or absl views) and numbers.
template <typename... Args>
std::string strCat(const Args&... args) {
  std::string out;
  (str_internal::append(out, args), ...);
  return out;
}

inline std::string strJoin(const std::vector<std::string_view>& parts, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out.append(sep);
    out.append(parts[i]);
  }
  return out;
}

}  // namespace airbag::config
