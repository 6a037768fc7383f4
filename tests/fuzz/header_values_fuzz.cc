// Fuzzes the small value parsers that read untrusted or hand-written text:
// Cache-Control (from upstream answers and requests), Retry-After (from
// upstream answers), and the config's durations and sizes. None may crash; the
// results stay within their documented bounds; a duration or size that parses
// re-renders (the form GET /config prints) and parses back to the same value.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "airbag/config.h"
#include "policy/cache_control.h"
#include "policy/retry.h"
#include "proxy/config/units.h"

namespace {

[[noreturn]] void fail(const char* what, std::string_view input, const std::string& detail) {
  std::fprintf(stderr, "header_values_fuzz: %s\ninput [%.*s]\n%s\n", what,
               static_cast<int>(input.size()), input.data(), detail.c_str());
  std::abort();
}

// As config_json.cc prints a duration.
std::string render(absl::Duration d) {
  return d == absl::ZeroDuration() ? "0s" : absl::FormatDuration(d);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);

  airbag::RouteCacheConfig route;
  route.ttl = absl::Seconds(30);
  route.stale_while_revalidate = absl::Seconds(60);
  route.stale_if_error = absl::Minutes(10);
  for (bool respect : {true, false}) {
    route.respect_cache_control = respect;
    for (bool stream : {false, true}) {
      airbag::policy::Freshness f = airbag::policy::freshnessFor(route, text, stream);
      if (f.ttl < absl::ZeroDuration() || f.ttl > absl::Seconds(int64_t{1} << 31) ||
          f.stale_while_revalidate < absl::ZeroDuration() ||
          f.stale_if_error < absl::ZeroDuration())
        fail("freshness out of bounds", text, render(f.ttl));
    }
  }
  (void)airbag::policy::requestBypassesCache(text);

  const absl::Time now = absl::FromUnixSeconds(1700000000);
  if (auto wait = airbag::policy::parseRetryAfter(text, now)) {
    if (*wait < absl::ZeroDuration() || *wait > absl::Hours(24))
      fail("Retry-After wait out of bounds", text, render(*wait));
  }

  if (auto d = airbag::config::parseDuration(text); d.ok()) {
    auto back = airbag::config::parseDuration(render(*d));
    if (!back.ok()) fail("a rendered duration does not parse", text, back.status().ToString());
    if (*back != *d) fail("a rendered duration parses to another value", text, render(*d));
  }
  if (auto s = airbag::config::parseSize(text); s.ok()) {
    for (const std::string& r : {std::to_string(*s), std::to_string(*s) + "B"}) {
      auto back = airbag::config::parseSize(r);
      if (!back.ok() || *back != *s) fail("a rendered size does not parse back", text, r);
    }
  }
  (void)airbag::config::parseRatio(text);
  (void)airbag::config::parseHostPort(text);
  return 0;
}
