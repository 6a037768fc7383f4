// Parsers for durations, sizes, ratios and host:port (see units.h). Strict on
// purpose: a typo in a timeout should fail the load, not become a default.
#include "proxy/config/units.h"

#include <cctype>
#include <cstdint>
#include <limits>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "proxy/config/str_util.h"

namespace airbag::config {
namespace {

bool isDigit(char c) { return c >= '0' && c <= '9'; }

// Splits a leading run of digits off `s`.
std::string_view takeDigits(std::string_view& s) {
  size_t n = 0;
  while (n < s.size() && isDigit(s[n])) ++n;
  std::string_view digits = s.substr(0, n);
  s.remove_prefix(n);
  return digits;
}

absl::Status invalid(std::string_view what, std::string_view text, std::string_view why) {
  return absl::InvalidArgumentError(strCat("invalid ", what, " '", text, "': ", why));
}

struct DurationUnit {
  std::string_view name;
  absl::Duration unit;
};

// Longest names first so "ms" is not read as "m" followed by junk.
constexpr int kDurationUnitCount = 7;
const DurationUnit* durationUnits() {
  static const DurationUnit kUnits[kDurationUnitCount] = {
      {"ns", absl::Nanoseconds(1)},  {"us", absl::Microseconds(1)}, {"µs", absl::Microseconds(1)},
      {"ms", absl::Milliseconds(1)}, {"s", absl::Seconds(1)},       {"m", absl::Minutes(1)},
      {"h", absl::Hours(1)}};
  return kUnits;
}

}  // namespace

absl::StatusOr<absl::Duration> parseDuration(std::string_view text) {
  constexpr std::string_view kWhat = "duration";
  if (text.empty()) return invalid(kWhat, text, "empty (use e.g. 250ms, 2s, 5m)");
  if (text[0] == '-') return invalid(kWhat, text, "negative durations are not allowed");
  std::string_view rest = text;
  if (rest[0] == '+') rest.remove_prefix(1);
  absl::Duration total = absl::ZeroDuration();
  // Compound values such as "1m30s" are accepted so that the form printed by
  // GET /config can be pasted back into a file.
  while (!rest.empty()) {
    std::string_view whole = takeDigits(rest);
    std::string_view frac;
    if (!rest.empty() && rest[0] == '.') {
      rest.remove_prefix(1);
      frac = takeDigits(rest);
      if (frac.empty()) return invalid(kWhat, text, "expected digits after '.'");
    }
    if (whole.empty() && frac.empty()) {
      return invalid(kWhat, text, "expected a number followed by a unit (ns, us, ms, s, m, h)");
    }
    if (rest.empty()) return invalid(kWhat, text, "missing unit (use e.g. 250ms, 2s, 5m)");
    const DurationUnit* unit = nullptr;
    for (int i = 0; i < kDurationUnitCount; ++i) {
      const DurationUnit& u = durationUnits()[i];
      if (rest.substr(0, u.name.size()) == u.name &&
          (rest.size() == u.name.size() ||
           !std::isalpha(static_cast<unsigned char>(rest[u.name.size()])))) {
        unit = &u;
        break;
      }
    }
    if (unit == nullptr) {
      size_t n = 0;
      while (n < rest.size() && !isDigit(rest[n]) && rest[n] != '.') ++n;
      return invalid(
          kWhat, text,
          strCat("unknown unit '", rest.substr(0, n), "' (expected ns, us, ms, s, m or h)"));
    }
    rest.remove_prefix(unit->name.size());
    int64_t w = 0;
    if (!whole.empty() && (whole.size() > 15 || !absl::SimpleAtoi(toAbsl(whole), &w))) {
      return invalid(kWhat, text, "too large");
    }
    absl::Duration part = unit->unit * w;
    if (!frac.empty()) {
      // Exact decimal fraction: digits / 10^n of the unit, to nanosecond precision.
      std::string_view f = frac.substr(0, 9);
      int64_t fv = 0;
      absl::SimpleAtoi(toAbsl(f), &fv);
      int64_t scale = 1;
      for (size_t i = 0; i < f.size(); ++i) scale *= 10;
      part += absl::Nanoseconds(absl::ToInt64Nanoseconds(unit->unit) / scale * fv +
                                (absl::ToInt64Nanoseconds(unit->unit) % scale) * fv / scale);
    }
    total += part;
    if (total > absl::Hours(24 * 365 * 100)) return invalid(kWhat, text, "too large");
  }
  return total;
}

absl::StatusOr<uint64_t> parseSize(std::string_view text) {
  constexpr std::string_view kWhat = "size";
  if (text.empty()) return invalid(kWhat, text, "empty (use e.g. 512B, 64KiB, 16MiB)");
  if (text[0] == '-') return invalid(kWhat, text, "negative sizes are not allowed");
  std::string_view rest = text;
  std::string_view digits = takeDigits(rest);
  if (digits.empty()) return invalid(kWhat, text, "expected a whole number of bytes and a unit");
  if (!rest.empty() && rest[0] == '.') {
    return invalid(kWhat, text, "sizes are whole numbers (use a smaller unit, e.g. 1536KiB)");
  }
  uint64_t n = 0;
  if (!absl::SimpleAtoi(toAbsl(digits), &n)) return invalid(kWhat, text, "too large");
  struct SizeUnit {
    std::string_view name;
    uint64_t factor;
  };
  static constexpr SizeUnit kUnits[] = {
      {"", 1},
      {"b", 1},
      {"kib", 1ull << 10},
      {"mib", 1ull << 20},
      {"gib", 1ull << 30},
      {"tib", 1ull << 40},
      {"kb", 1000ull},
      {"mb", 1000ull * 1000},
      {"gb", 1000ull * 1000 * 1000},
      {"tb", 1000ull * 1000 * 1000 * 1000},
  };
  const std::string unit = absl::AsciiStrToLower(toAbsl(rest));
  for (const SizeUnit& u : kUnits) {
    if (unit != u.name) continue;
    if (n > std::numeric_limits<uint64_t>::max() / u.factor) {
      return invalid(kWhat, text, "too large");
    }
    return n * u.factor;
  }
  return invalid(
      kWhat, text,
      strCat("unknown unit '", rest, "' (expected B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)"));
}

absl::StatusOr<double> parseRatio(std::string_view text) {
  constexpr std::string_view kWhat = "ratio";
  if (text.empty()) return invalid(kWhat, text, "empty (use e.g. 0.2 or 20%)");
  std::string_view number = text;
  const bool percent = number.back() == '%';
  if (percent) number.remove_suffix(1);
  // Only plain decimals: SimpleAtod would also take "nan", "inf" and hex.
  std::string_view rest = number;
  if (!rest.empty() && rest[0] == '-') {
    return invalid(kWhat, text, percent ? "must be within 0%..100%" : "must be within 0..1");
  }
  std::string_view whole = takeDigits(rest);
  std::string_view frac;
  if (!rest.empty() && rest[0] == '.') {
    rest.remove_prefix(1);
    frac = takeDigits(rest);
  }
  if ((whole.empty() && frac.empty()) || !rest.empty()) {
    return invalid(kWhat, text, "expected a fraction such as 0.2 or a percentage such as 20%");
  }
  double v = 0;
  if (!absl::SimpleAtod(toAbsl(number), &v)) {
    return invalid(kWhat, text, "expected a fraction such as 0.2 or a percentage such as 20%");
  }
  if (percent) {
    if (v > 100) return invalid(kWhat, text, "must be within 0%..100%");
    return v / 100;
  }
  if (v > 1) return invalid(kWhat, text, "must be within 0..1 (or write a percentage, e.g. 20%)");
  return v;
}

absl::StatusOr<HostPort> parseHostPort(std::string_view text) {
  constexpr std::string_view kWhat = "address";
  if (text.empty()) return invalid(kWhat, text, "empty (use host:port, e.g. 127.0.0.1:8080)");
  if (text.find("://") != std::string_view::npos) {
    return invalid(kWhat, text, "expected host:port, not a url");
  }
  HostPort out;
  std::string_view port;
  if (text[0] == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos) return invalid(kWhat, text, "missing ']'");
    std::string_view host = text.substr(1, close - 1);
    if (host.empty() || host.find(':') == std::string_view::npos) {
      return invalid(kWhat, text, "brackets are only for IPv6 addresses");
    }
    // An optional zone ("%eth0") follows the address and is an interface name.
    const size_t zone = host.find('%');
    for (size_t i = 0; i < host.size(); ++i) {
      const unsigned char c = static_cast<unsigned char>(host[i]);
      const bool ok = i < zone
                          ? (std::isxdigit(c) || c == ':' || c == '.')
                          : (i > zone && (std::isalnum(c) || c == '-' || c == '_' || c == '.'));
      if (!ok && i != zone) return invalid(kWhat, text, "invalid IPv6 address");
    }
    if (zone + 1 == host.size()) return invalid(kWhat, text, "empty IPv6 zone after '%'");
    std::string_view after = text.substr(close + 1);
    if (after.empty() || after[0] != ':') return invalid(kWhat, text, "missing ':port'");
    out.host = std::string(host);
    port = after.substr(1);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return invalid(kWhat, text, "missing ':port'");
    std::string_view host = text.substr(0, colon);
    if (host.empty()) return invalid(kWhat, text, "missing host (use 0.0.0.0 for all interfaces)");
    if (host.find(':') != std::string_view::npos) {
      return invalid(kWhat, text, "IPv6 addresses must be in brackets, e.g. [::1]:9901");
    }
    for (char c : host) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.' && c != '_') {
        return invalid(kWhat, text, strCat("invalid character '", std::string(1, c), "' in host"));
      }
    }
    out.host = std::string(host);
    port = text.substr(colon + 1);
  }
  if (port.empty()) return invalid(kWhat, text, "missing port");
  uint32_t p = 0;
  for (char c : port) {
    if (!isDigit(c)) return invalid(kWhat, text, "port must be a number in 0..65535");
  }
  if (port.size() > 5 || !absl::SimpleAtoi(toAbsl(port), &p) || p > 65535) {
    return invalid(kWhat, text, "port must be a number in 0..65535");
  }
  out.port = static_cast<uint16_t>(p);
  return out;
}

}  // namespace airbag::config
