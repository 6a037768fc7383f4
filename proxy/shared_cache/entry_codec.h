// How a cache entry is kept in Redis: the key it is kept under, and the
// versioned binary value (DESIGN.md §8 cache.shared). Pure: no I/O.
//
// A value another airbag version wrote, or one damaged in any way, decodes to
// nothing (a miss), never to a wrong answer and never to a crash.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "policy/cache_store.h"

namespace airbag::shared_cache {

// The layout version this build writes and the only one it reads.
inline constexpr uint8_t kEntryVersion = 1;

// The Redis key of a cache key: `prefix` + the route (escaped, see below) + ':'
// + 32 hex digits of the SHA-256 of the full cache key. A digest keeps keys
// short (a cache key may hold a request body) and free of '{' '}' that Redis
// Cluster would read as a hash tag; the value carries the full key, so two
// cache keys with one digest are a miss, never the other's answer. In the
// route name, bytes outside [A-Za-z0-9._-] are written %XX, so SCAN patterns
// and hash tags never see them.
std::string redisKey(std::string_view prefix, std::string_view route, std::string_view cache_key);
// The SCAN MATCH pattern of every key of `route` (for a purge).
std::string routePattern(std::string_view prefix, std::string_view route);

// The value for `entry`: magic "AB", version, then status, stored-at, ttl,
// stale-while-revalidate, stale-if-error, flags, the kept headers, the full
// cache key and the body, each length-prefixed, then a 64-bit checksum of all
// that precedes it. Little-endian fixed-width integers.
std::string encodeEntry(const policy::CacheEntry& entry);

// The entry in `value`, stored for `cache_key` of `route`; null when the
// magic or version differ, a length runs past the end, bytes are left over,
// the checksum fails, the status is not 100..599, a header could not be sent
// as it is (an empty or non-token name, CR, LF or NUL in a value), a window
// is negative, or the value was stored for another cache key.
std::shared_ptr<policy::CacheEntry> decodeEntry(std::string_view value,
                                                std::string_view cache_key,
                                                std::string_view route);

// How long Redis should keep an entry stored at `stored_at`, seen at `now`:
// what is left of ttl plus the longer stale window. Zero or less: not worth
// writing.
absl::Duration keepFor(const policy::CacheEntry& entry, absl::Time now);

// CRC16-CCITT (XMODEM) as Redis Cluster uses it, and the hash slot (0..16383)
// of a key, honouring a {hash tag} the way the cluster spec says.
uint16_t crc16(std::string_view data);
int hashSlot(std::string_view key);
inline constexpr int kClusterSlots = 16384;

}  // namespace airbag::shared_cache
