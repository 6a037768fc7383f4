// Allocation-free formatting helpers shared by the process log and the access
// log. `Buf` is std::string or fmt::memory_buffer: anything with push_back and
// append(first, last).
#pragma once

#include <charconv>
#include <cstdint>
#include <string_view>

#include "absl/time/civil_time.h"
#include "absl/time/time.h"

namespace airbag::log {

// Length of the well-formed UTF-8 sequence starting at s[i] (2..4), or 0 when
// the bytes there are not one (overlong, surrogate, truncated, > U+10FFFF).
inline size_t utf8SequenceLength(std::string_view s, size_t i) {
  auto at = [&](size_t k) -> unsigned { return static_cast<unsigned char>(s[k]); };
  auto cont = [&](size_t k, unsigned lo = 0x80, unsigned hi = 0xbf) {
    return k < s.size() && at(k) >= lo && at(k) <= hi;
  };
  unsigned c = at(i);
  if (c >= 0xc2 && c <= 0xdf) return cont(i + 1) ? 2 : 0;
  if (c == 0xe0) return cont(i + 1, 0xa0) && cont(i + 2) ? 3 : 0;
  if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef) return cont(i + 1) && cont(i + 2) ? 3 : 0;
  if (c == 0xed) return cont(i + 1, 0x80, 0x9f) && cont(i + 2) ? 3 : 0;
  if (c == 0xf0) return cont(i + 1, 0x90) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  if (c >= 0xf1 && c <= 0xf3) return cont(i + 1) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  if (c == 0xf4) return cont(i + 1, 0x80, 0x8f) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  return 0;
}

// Appends `s` as the inside of a JSON string: quotes, backslashes and control
// characters escaped, valid UTF-8 kept, invalid bytes replaced by U+FFFD so
// the line always parses. Request paths are client bytes; trust none of them.
template <typename Buf>
void appendJsonEscaped(Buf& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  size_t run = 0;
  size_t i = 0;
  auto flush = [&] {
    if (i > run) out.append(s.data() + run, s.data() + i);
  };
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
      ++i;
      continue;
    }
    if (c >= 0x80) {
      if (size_t len = utf8SequenceLength(s, i)) {
        i += len;
        continue;
      }
    }
    flush();
    std::string_view esc;
    switch (c) {
      case '"':
        esc = "\\\"";
        break;
      case '\\':
        esc = "\\\\";
        break;
      case '\n':
        esc = "\\n";
        break;
      case '\r':
        esc = "\\r";
        break;
      case '\t':
        esc = "\\t";
        break;
      case '\b':
        esc = "\\b";
        break;
      case '\f':
        esc = "\\f";
        break;
      default:
        break;
    }
    if (!esc.empty()) {
      out.append(esc.data(), esc.data() + esc.size());
    } else if (c >= 0x80) {
      std::string_view r = "\\ufffd";
      out.append(r.data(), r.data() + r.size());
    } else {
      char u[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xf]};
      out.append(u, u + sizeof(u));
    }
    ++i;
    run = i;
  }
  flush();
}

template <typename Buf>
void appendLiteral(Buf& out, std::string_view s) {
  out.append(s.data(), s.data() + s.size());
}

template <typename Buf>
void appendInt(Buf& out, int64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out.append(buf, r.ptr);
}

// Appends `d` in milliseconds with microsecond precision ("12.345").
template <typename Buf>
void appendMillis(Buf& out, absl::Duration d) {
  int64_t us = absl::ToInt64Microseconds(d);
  if (us < 0) {
    out.push_back('-');
    us = -us;
  }
  appendInt(out, us / 1000);
  char frac[4] = {'.', static_cast<char>('0' + us / 100 % 10),
                  static_cast<char>('0' + us / 10 % 10), static_cast<char>('0' + us % 10)};
  out.append(frac, frac + sizeof(frac));
}

// Appends `t` as RFC 3339 UTC with milliseconds: 2024-05-01T12:34:56.789Z.
template <typename Buf>
void appendRfc3339Millis(Buf& out, absl::Time t) {
  absl::TimeZone utc = absl::UTCTimeZone();
  absl::CivilSecond cs = absl::ToCivilSecond(t, utc);
  int64_t ms = absl::ToInt64Milliseconds(t - absl::FromCivil(cs, utc));
  auto two = [](int v, char* p) {
    p[0] = static_cast<char>('0' + v / 10 % 10);
    p[1] = static_cast<char>('0' + v % 10);
  };
  char b[24];
  int64_t y = cs.year();
  b[0] = static_cast<char>('0' + y / 1000 % 10);
  b[1] = static_cast<char>('0' + y / 100 % 10);
  b[2] = static_cast<char>('0' + y / 10 % 10);
  b[3] = static_cast<char>('0' + y % 10);
  b[4] = '-';
  two(cs.month(), b + 5);
  b[7] = '-';
  two(cs.day(), b + 8);
  b[10] = 'T';
  two(cs.hour(), b + 11);
  b[13] = ':';
  two(cs.minute(), b + 14);
  b[16] = ':';
  two(cs.second(), b + 17);
  b[19] = '.';
  b[20] = static_cast<char>('0' + ms / 100 % 10);
  b[21] = static_cast<char>('0' + ms / 10 % 10);
  b[22] = static_cast<char>('0' + ms % 10);
  b[23] = 'Z';
  out.append(b, b + sizeof(b));
}

}  // namespace airbag::log
