// Header storage and header-name helpers; see headers.h.
#include "proxy/http/headers.h"

#include <array>
#include <cstdint>
#include <cstring>

#include "proxy/http/text.h"

namespace airbag::http {
namespace {

constexpr char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

std::string_view trimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

bool isHopByHop(std::string_view name) {
  static constexpr std::array<std::string_view, 9> kHopByHop = {
      "connection", "keep-alive",          "proxy-connection", "proxy-authenticate",
      "te",         "proxy-authorization", "trailer",          "transfer-encoding",
      "upgrade"};
  // Quick reject on the first letter keeps this cheap for ordinary headers.
  if (name.empty()) return false;
  char c = lower(name[0]);
  if (c != 'c' && c != 'k' && c != 'p' && c != 't' && c != 'u') return false;
  for (std::string_view h : kHopByHop)
    if (iequals(name, h)) return true;
  return false;
}

namespace {

// `n` equals `lower` ignoring ASCII case, where `lower` is a lower-case token
// of letters, digits and '-'. Setting bit 5 folds case for exactly those
// characters; the other bytes it could confuse (controls) are not allowed in
// header names and never reach here. Compares 8 bytes at a time; the length
// is a constant, so each call unrolls into a few loads and compares.
template <size_t N>
inline bool equalsToken(std::string_view n, const char (&lower)[N]) {
  constexpr size_t kLen = N - 1;
  if (n.size() != kLen) return false;
  size_t i = 0;
  for (; i + 8 <= kLen; i += 8) {
    uint64_t a, b;
    std::memcpy(&a, n.data() + i, 8);
    std::memcpy(&b, lower + i, 8);
    if ((a | 0x2020202020202020ull) != b) return false;
  }
  for (; i < kLen; ++i)
    if ((n[i] | 0x20) != lower[i]) return false;
  return true;
}

}  // namespace

HeaderKind classifyHeader(std::string_view n) {
  switch (n.size()) {
    case 2:
      if (equalsToken(n, "te")) return HeaderKind::kHopByHop;
      break;
    case 4:
      if (equalsToken(n, "host")) return HeaderKind::kHost;
      break;
    case 6:
      if (equalsToken(n, "expect")) return HeaderKind::kExpect;
      if (equalsToken(n, "pragma")) return HeaderKind::kPragma;
      break;
    case 7:
      if (equalsToken(n, "upgrade") || equalsToken(n, "trailer")) return HeaderKind::kHopByHop;
      break;
    case 10:
      if (equalsToken(n, "connection")) return HeaderKind::kConnection;
      if (equalsToken(n, "keep-alive")) return HeaderKind::kHopByHop;
      break;
    case 11:
      if (equalsToken(n, "retry-after")) return HeaderKind::kRetryAfter;
      break;
    case 12:
      if (equalsToken(n, "content-type")) return HeaderKind::kContentType;
      if (equalsToken(n, "x-request-id")) return HeaderKind::kRequestId;
      break;
    case 13:
      if (equalsToken(n, "cache-control")) return HeaderKind::kCacheControl;
      break;
    case 14:
      if (equalsToken(n, "content-length")) return HeaderKind::kContentLength;
      break;
    case 16:
      if (equalsToken(n, "proxy-connection")) return HeaderKind::kHopByHop;
      break;
    case 17:
      if (equalsToken(n, "transfer-encoding")) return HeaderKind::kTransferEncoding;
      break;
    case 18:
      if (equalsToken(n, "proxy-authenticate")) return HeaderKind::kHopByHop;
      break;
    case 19:
      if (equalsToken(n, "x-airbag-timeout-ms")) return HeaderKind::kBudget;
      if (equalsToken(n, "proxy-authorization")) return HeaderKind::kHopByHop;
      break;
    default:
      break;
  }
  if (n.size() > 9 && (n[0] == 'x' || n[0] == 'X') && equalsToken(n.substr(0, 9), "x-airbag-"))
    return HeaderKind::kAirbag;
  return HeaderKind::kOther;
}

bool isRelayedAnswerHeader(HeaderKind kind) {
  switch (kind) {
    case HeaderKind::kHopByHop:
    case HeaderKind::kConnection:
    case HeaderKind::kTransferEncoding:
    case HeaderKind::kContentLength:
    case HeaderKind::kRequestId:
    case HeaderKind::kBudget:
    case HeaderKind::kAirbag:
      return false;
    default:
      return true;
  }
}

bool isStreamingContentType(std::string_view content_type) {
  return startsWithIgnoreCase(content_type, "text/event-stream") ||
         startsWithIgnoreCase(content_type, "application/x-ndjson") ||
         startsWithIgnoreCase(content_type, "application/jsonl") ||
         startsWithIgnoreCase(content_type, "application/json-seq");
}

namespace {

// The bytes of a reg-name or IPv4 address (RFC 3986: unreserved, pct-encoded
// and sub-delims), and of a bracketed IP literal.
constexpr std::array<bool, 256> kRegNameChars = [] {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = t[c - 'a' + 'A'] = true;
  for (char c : std::string_view("-._~%!$&'()*+,;=")) t[static_cast<unsigned char>(c)] = true;
  return t;
}();
constexpr std::array<bool, 256> kIpLiteralChars = [] {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'f'; ++c) t[c] = t[c - 'a' + 'A'] = true;
  t[':'] = t['.'] = true;
  return t;
}();

bool allOf(std::string_view s, const std::array<bool, 256>& table) {
  bool ok = true;
  for (char c : s) ok &= table[static_cast<unsigned char>(c)];
  return ok;
}

}  // namespace

bool isValidHost(std::string_view host) {
  if (host.empty()) return false;
  std::string_view port;
  if (host.front() == '[') {
    size_t close = host.find(']');
    if (close == std::string_view::npos || close < 2) return false;
    if (!allOf(host.substr(1, close - 1), kIpLiteralChars)) return false;
    std::string_view rest = host.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':' || rest.size() == 1) return false;
      port = rest.substr(1);
    }
  } else {
    std::string_view name = host;
    size_t colon = host.rfind(':');
    if (colon != std::string_view::npos) {
      name = host.substr(0, colon);
      port = host.substr(colon + 1);
      if (name.empty() || port.empty()) return false;
    }
    if (!allOf(name, kRegNameChars)) return false;
  }
  if (port.size() > 5) return false;
  for (char c : port)
    if (c < '0' || c > '9') return false;
  return true;
}

bool headerHasToken(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    size_t comma = value.find(',');
    std::string_view item = trimOws(value.substr(0, comma));
    if (iequals(item, token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

void HeaderList::add(std::string_view name, std::string_view value) {
  beginName();
  appendName(name);
  beginValue();
  appendValue(value);
}

void HeaderList::appendName(std::string_view piece) {
  arena_.append(piece);
  entries_.back().name_len += static_cast<uint32_t>(piece.size());
}

void HeaderList::beginValue() {
  entries_.back().value_off = static_cast<uint32_t>(arena_.size());
  entries_.back().value_len = 0;
}

void HeaderList::appendValue(std::string_view piece) {
  arena_.append(piece);
  entries_.back().value_len += static_cast<uint32_t>(piece.size());
}

std::optional<std::string_view> HeaderList::get(std::string_view name) const {
  for (size_t i = 0; i < entries_.size(); ++i)
    if (iequals(this->name(i), name)) return value(i);
  return std::nullopt;
}

}  // namespace airbag::http
