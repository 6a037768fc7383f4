// What the route says about a complete answer, whichever path fetched it (a
// client's request or a background refresh): whether it is valid (the
// route's `validate`), and the cache entry it makes, if it may be stored.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "airbag/config.h"
#include "policy/cache_store.h"

namespace airbag::pipeline {

// Checks a complete answer against the route's `validate`: only 2xx answers
// are checked. False = invalid, with the reason in `*reason` (if not null).
bool answerIsValid(const RouteConfig& route, int status, std::string_view body,
                   std::string* reason);

// A cache entry for an answer of `route`, or null when it must not be stored
// (Cache-Control, an event stream without its end, too big).
std::shared_ptr<policy::CacheEntry> makeCacheEntry(
    const RouteConfig& route, std::string key, int status,
    std::vector<std::pair<std::string, std::string>> headers, std::string body, bool stream,
    bool event_stream, std::string_view cache_control, absl::Time now);

}  // namespace airbag::pipeline
