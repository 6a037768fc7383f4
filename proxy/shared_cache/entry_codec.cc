// The Redis value layout of a cache entry and the keys entries live under.
#include "proxy/shared_cache/entry_codec.h"

#include <openssl/sha.h>

#include <algorithm>
#include <cstring>
#include <utility>

namespace airbag::shared_cache {
namespace {

constexpr char kMagic[2] = {'A', 'B'};
constexpr uint8_t kFlagStream = 1;
// No answer we keep has more headers than this; a count past it is damage.
constexpr uint32_t kMaxHeaders = 1024;

void appendRouteEscaped(std::string& out, std::string_view route) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (unsigned char c : route) {
    bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
    if (plain) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
}

// FNV-1a, 64 bits: catches damage, not tampering (whoever can write to Redis
// can write a valid entry anyway).
uint64_t checksum(std::string_view data) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : data) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

void putU16(std::string& out, uint16_t v) {
  out += static_cast<char>(v & 0xff);
  out += static_cast<char>(v >> 8);
}
void putU32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}
void putU64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}
void putBytes(std::string& out, std::string_view s) {
  putU32(out, static_cast<uint32_t>(s.size()));
  out.append(s);
}
int64_t micros(absl::Duration d) { return absl::ToInt64Microseconds(d); }

// Reads fixed-width fields off the front of a value; any read past the end
// fails it for good.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool ok() const { return ok_; }
  bool done() const { return ok_ && in_.empty(); }
  uint64_t uint(size_t width) {
    if (!take(width)) return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < width; ++i)
      v |= static_cast<uint64_t>(static_cast<unsigned char>(last_[i])) << (8 * i);
    return v;
  }
  std::string_view bytes() {
    uint64_t n = uint(4);
    if (!take(n)) return {};
    return last_;
  }

 private:
  bool take(uint64_t n) {
    if (!ok_ || n > in_.size()) {
      ok_ = false;
      return false;
    }
    last_ = in_.substr(0, n);
    in_.remove_prefix(n);
    return true;
  }
  std::string_view in_;
  std::string_view last_;
  bool ok_ = true;
};

bool isTokenChar(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != 0;
}
bool validName(std::string_view n) {
  return !n.empty() && std::all_of(n.begin(), n.end(), [](char c) {
    return isTokenChar(static_cast<unsigned char>(c));
  });
}
bool validValue(std::string_view v) {
  return v.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

}  // namespace

std::string redisKey(std::string_view prefix, std::string_view route, std::string_view cache_key) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(cache_key.data()), cache_key.size(), digest);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string k(prefix);
  appendRouteEscaped(k, route);
  k += ':';
  for (int i = 0; i < 16; ++i) {
    k += kHex[digest[i] >> 4];
    k += kHex[digest[i] & 15];
  }
  return k;
}

std::string routePattern(std::string_view prefix, std::string_view route) {
  // The escaped route holds no glob character; the prefix may: escape it.
  std::string p;
  for (char c : prefix) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') p += '\\';
    p += c;
  }
  appendRouteEscaped(p, route);
  p += ":*";
  return p;
}

std::string encodeEntry(const policy::CacheEntry& e) {
  std::string out;
  size_t size = 64 + e.key.size() + e.body.size();
  for (const auto& [n, v] : e.headers) size += 8 + n.size() + v.size();
  out.reserve(size);
  out.append(kMagic, 2);
  out += static_cast<char>(kEntryVersion);
  out += static_cast<char>(e.stream ? kFlagStream : 0);
  putU16(out, static_cast<uint16_t>(e.status));
  putU64(out, static_cast<uint64_t>(absl::ToUnixMicros(e.stored_at)));
  putU64(out, static_cast<uint64_t>(micros(e.freshness.ttl)));
  putU64(out, static_cast<uint64_t>(micros(e.freshness.stale_while_revalidate)));
  putU64(out, static_cast<uint64_t>(micros(e.freshness.stale_if_error)));
  putU32(out, static_cast<uint32_t>(e.headers.size()));
  for (const auto& [n, v] : e.headers) {
    putBytes(out, n);
    putBytes(out, v);
  }
  putBytes(out, e.key);
  putBytes(out, e.body);
  putU64(out, checksum(out));
  return out;
}

std::shared_ptr<policy::CacheEntry> decodeEntry(std::string_view value,
                                                std::string_view cache_key,
                                                std::string_view route) {
  if (value.size() < 4 + 8 || value.substr(0, 2) != std::string_view(kMagic, 2) ||
      static_cast<uint8_t>(value[2]) != kEntryVersion)
    return nullptr;
  std::string_view payload = value.substr(0, value.size() - 8);
  Reader sum(value.substr(value.size() - 8));
  if (sum.uint(8) != checksum(payload)) return nullptr;
  Reader r(payload.substr(3));
  uint64_t flags = r.uint(1);
  auto e = std::make_shared<policy::CacheEntry>();
  e->status = static_cast<int>(r.uint(2));
  auto stored = static_cast<int64_t>(r.uint(8));
  auto ttl = static_cast<int64_t>(r.uint(8));
  auto swr = static_cast<int64_t>(r.uint(8));
  auto sie = static_cast<int64_t>(r.uint(8));
  uint64_t headers = r.uint(4);
  if (!r.ok() || (flags & ~uint64_t{kFlagStream}) != 0 || e->status < 100 || e->status > 599 ||
      ttl < 0 || swr < 0 || sie < 0 || headers > kMaxHeaders)
    return nullptr;
  e->stream = (flags & kFlagStream) != 0;
  e->stored_at = absl::FromUnixMicros(stored);
  e->freshness.ttl = absl::Microseconds(ttl);
  e->freshness.stale_while_revalidate = absl::Microseconds(swr);
  e->freshness.stale_if_error = absl::Microseconds(sie);
  e->headers.reserve(headers);
  for (uint64_t i = 0; i < headers; ++i) {
    std::string_view n = r.bytes();
    std::string_view v = r.bytes();
    if (!r.ok() || !validName(n) || !validValue(v)) return nullptr;
    e->headers.emplace_back(std::string(n), std::string(v));
  }
  std::string_view key = r.bytes();
  std::string_view body = r.bytes();
  if (!r.done() || key != cache_key) return nullptr;
  e->key = std::string(key);
  e->body = std::string(body);
  e->route = std::string(route);
  return e;
}

absl::Duration keepFor(const policy::CacheEntry& e, absl::Time now) {
  const policy::Freshness& f = e.freshness;
  absl::Duration age = std::max(absl::ZeroDuration(), now - e.stored_at);
  return f.ttl + std::max(f.stale_while_revalidate, f.stale_if_error) - age;
}

uint16_t crc16(std::string_view data) {
  uint16_t crc = 0;
  for (unsigned char c : data) {
    crc ^= static_cast<uint16_t>(c << 8);
    for (int i = 0; i < 8; ++i)
      crc = (crc & 0x8000) ? static_cast<uint16_t>((crc << 1) ^ 0x1021)
                           : static_cast<uint16_t>(crc << 1);
  }
  return crc;
}

int hashSlot(std::string_view key) {
  size_t open = key.find('{');
  if (open != std::string_view::npos) {
    size_t close = key.find('}', open + 1);
    if (close != std::string_view::npos && close != open + 1)
      key = key.substr(open + 1, close - open - 1);
  }
  return crc16(key) % kClusterSlots;
}

}  // namespace airbag::shared_cache
