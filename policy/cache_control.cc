// Cache-Control parsing for the response cache; see cache_control.h.
#include "policy/cache_control.h"

#include <algorithm>
#include <cstdint>

namespace airbag::policy {
namespace {

// RFC 9111 §1.2.2: a delta-seconds too large to represent is taken as 2^31.
constexpr int64_t kMaxDeltaSeconds = int64_t{1} << 31;

bool isSpace(char c) { return c == ' ' || c == '\t'; }

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && isSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && isSpace(s.back())) s.remove_suffix(1);
  return s;
}

// One directive: its name and its value with the quotes removed. Escapes are
// left in place: no value we read may contain one, so a value that does is
// invalid anyway, and parsing stays allocation-free.
struct Directive {
  std::string_view name;
  std::string_view value;
  bool has_value = false;
};

// Calls `fn(const Directive&)` for each directive of a Cache-Control value. Commas
// inside a quoted string (private="a, b") do not split.
template <typename Fn>
void forEachDirective(std::string_view header, Fn fn) {
  size_t i = 0;
  while (i < header.size()) {
    // The name runs to '=', ',' or the end.
    size_t name_end = i;
    while (name_end < header.size() && header[name_end] != '=' && header[name_end] != ',')
      ++name_end;
    Directive d;
    d.name = trim(header.substr(i, name_end - i));
    i = name_end;
    if (i < header.size() && header[i] == '=') {
      d.has_value = true;
      ++i;
      while (i < header.size() && isSpace(header[i])) ++i;
      if (i < header.size() && header[i] == '"') {
        const size_t start = ++i;
        while (i < header.size() && header[i] != '"') i += (header[i] == '\\') ? 2 : 1;
        i = std::min(i, header.size());
        d.value = header.substr(start, i - start);
        if (i < header.size()) ++i;  // closing quote
        // Anything between the closing quote and the next ',' is malformed; skip it.
        while (i < header.size() && header[i] != ',') ++i;
      } else {
        size_t end = i;
        while (end < header.size() && header[end] != ',') ++end;
        d.value = trim(header.substr(i, end - i));
        i = end;
      }
    }
    if (i < header.size()) ++i;  // the ','
    if (!d.name.empty()) fn(d);
  }
}

// delta-seconds (RFC 9111 §1.2.2): digits only. Returns nullopt when invalid.
std::optional<int64_t> parseDeltaSeconds(const Directive& d) {
  if (!d.has_value || d.value.empty()) return std::nullopt;
  int64_t v = 0;
  for (char c : d.value) {
    if (c < '0' || c > '9') return std::nullopt;
    if (v < kMaxDeltaSeconds) v = v * 10 + (c - '0');
  }
  return v < kMaxDeltaSeconds ? v : kMaxDeltaSeconds;
}

// An invalid max-age makes the answer stale (RFC 9111 §4.2.1 encourages it); an
// invalid stale window likewise grants nothing.
absl::Duration ageOrZero(const Directive& d) {
  std::optional<int64_t> s = parseDeltaSeconds(d);
  return s ? absl::Seconds(*s) : absl::ZeroDuration();
}

}  // namespace

Freshness freshnessFor(const RouteCacheConfig& route,
                       std::optional<std::string_view> cache_control_header,
                       bool finished_event_stream) {
  Freshness f{route.ttl, route.stale_while_revalidate, route.stale_if_error, true};
  if (!route.respect_cache_control || !cache_control_header) return f;

  std::optional<absl::Duration> max_age, s_maxage, swr, sie;
  bool revalidate = false;
  forEachDirective(*cache_control_header, [&](const Directive& d) {
    if (equalsIgnoreCase(d.name, "no-store") || equalsIgnoreCase(d.name, "private") ||
        (equalsIgnoreCase(d.name, "no-cache") && !finished_event_stream)) {
      f.store = false;
    } else if (equalsIgnoreCase(d.name, "s-maxage")) {
      if (!s_maxage) s_maxage = ageOrZero(d);
    } else if (equalsIgnoreCase(d.name, "max-age")) {
      if (!max_age) max_age = ageOrZero(d);
    } else if (equalsIgnoreCase(d.name, "must-revalidate") ||
               equalsIgnoreCase(d.name, "proxy-revalidate")) {
      revalidate = true;
    } else if (equalsIgnoreCase(d.name, "stale-while-revalidate")) {
      // An invalid stale window grants nothing rather than the route's default.
      if (!swr) swr = ageOrZero(d);
    } else if (equalsIgnoreCase(d.name, "stale-if-error")) {
      if (!sie) sie = ageOrZero(d);
    }
  });

  if (s_maxage) {
    f.ttl = *s_maxage;
  } else if (max_age) {
    f.ttl = *max_age;
  }
  if (revalidate) {
    f.stale_while_revalidate = absl::ZeroDuration();
    f.stale_if_error = absl::ZeroDuration();
  }
  if (swr) f.stale_while_revalidate = *swr;
  if (sie) f.stale_if_error = *sie;
  return f;
}

bool requestBypassesCache(std::optional<std::string_view> request_cache_control) {
  if (!request_cache_control) return false;
  bool bypass = false;
  forEachDirective(*request_cache_control, [&](const Directive& d) {
    if (equalsIgnoreCase(d.name, "no-cache") || equalsIgnoreCase(d.name, "no-store")) bypass = true;
  });
  return bypass;
}

}  // namespace airbag::policy
