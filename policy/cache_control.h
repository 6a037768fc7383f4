// HTTP caching directives (RFC 9111 Cache-Control, RFC 5861 stale-* extensions)
// turned into how long one answer of a route may be served, and for what.
#pragma once

#include <optional>
#include <string_view>

#include "absl/time/time.h"
#include "airbag/config.h"

namespace airbag::policy {

// How long a stored answer may be served, counted from when it was stored:
//   age <  ttl                          fresh
//   age <  ttl + stale_while_revalidate stale, served while one refresh runs
//   age <  ttl + stale_if_error         only when the upstream fails
// `store` false: the answer must not be stored at all.
struct Freshness {
  absl::Duration ttl = absl::ZeroDuration();
  absl::Duration stale_while_revalidate = absl::ZeroDuration();
  absl::Duration stale_if_error = absl::ZeroDuration();
  bool store = true;
};

// Returns the route's windows, overridden by the upstream answer's Cache-Control
// (several header lines joined with ", ") when the route respects it:
//  - no-store, no-cache, private (with or without field names): store = false
//    (a shared cache that cannot revalidate must not reuse such an answer);
//  - s-maxage, else max-age, sets ttl; an invalid value makes the answer stale
//    at once (ttl 0), a huge one is capped at 2^31 s; the first occurrence wins;
//  - must-revalidate / proxy-revalidate drop the route's stale windows;
//  - stale-while-revalidate=N and stale-if-error=N set those windows (and win
//    over must-revalidate, being the upstream's explicit word).
// Directive names are case-insensitive, values may be quoted, whitespace around
// ',' and '=' is ignored, unknown directives are ignored. Pure; thread-safe.
// With `finished_event_stream` (a complete text/event-stream answer on a route
// with `streams: true`), no-cache does not prevent storing: event-stream
// servers send it by reflex to keep intermediaries from buffering the stream,
// not to forbid keeping a finished one. no-store and private still do.
Freshness freshnessFor(const RouteCacheConfig& route,
                       std::optional<std::string_view> cache_control_header,
                       bool finished_event_stream = false);

// True if a request's Cache-Control asks to skip the cache (no-cache or
// no-store): the request goes upstream and its answer may still be stored.
// (Pragma: no-cache is the caller's to check.)
bool requestBypassesCache(std::optional<std::string_view> request_cache_control);

}  // namespace airbag::policy
