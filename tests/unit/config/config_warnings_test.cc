// configWarnings: a cache on a route that can take a health or readiness path is called out.
#include "proxy/config/config_warnings.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxy/config/config_loader.h"

namespace airbag::config {
namespace {

std::vector<std::string> warningsFor(const std::string& route) {
  const std::string yaml =
      "upstreams: { m: { url: 'http://127.0.0.1:8000' } }\n"
      "routes:\n" + route;
  auto c = loadString(yaml, "t.yaml");
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? configWarnings(**c) : std::vector<std::string>{};
}

TEST(ConfigWarningsTest, CachedHealthPathsWarn) {
  for (const char* match : {"{ path_prefix: /v2, methods: [GET] }",  // the old Triton example
                            "{ path: /health }", "{}",
                            "{ path_regex: '^/v2/models/[^/]+/ready$' }"}) {
    auto w = warningsFor(std::string("  - { name: r, upstream: m, match: ") + match +
                         ", cache: { ttl: 5s } }\n");
    ASSERT_EQ(w.size(), 1u) << match;
    EXPECT_THAT(w[0], ::testing::HasSubstr("t.yaml: warning: route \"r\""));
  }
}

TEST(ConfigWarningsTest, OtherRoutesDoNotWarn) {
  for (const char* route :
       {"  - { name: r, upstream: m, match: { path: /health } }\n",  // no cache
        // A route of their own, without a cache, takes the health paths first.
        "  - { name: h, upstream: m, match: { path_regex: '^/(healthz?|readyz?|livez|ping|v2/health/.*|v[12]/models/[^/]+/ready)$' } }\n"
        "  - { name: r, upstream: m, match: { path_prefix: /, methods: [GET] }, cache: { ttl: 5s } }\n"
        "  - { name: r2, upstream: m, match: {}, cache: { ttl: 5s } }\n",
        "  - { name: r, upstream: m, match: { path: /v1/models }, cache: { ttl: 5s } }\n",
        "  - { name: r, upstream: m, match: { path_prefix: / , methods: [POST] }, cache: { ttl: 5s } }\n",
        "  - { name: r, upstream: m, match: { path_regex: '^/v2(/models/[^/]+)?$' }, cache: { ttl: 5s } }\n"}) {
    EXPECT_THAT(warningsFor(route), ::testing::IsEmpty()) << route;
  }
}

TEST(ConfigWarningsTest, AdmissionThatCanNeverHoldARequestWarns) {
  auto w = warningsFor("  - { name: r, upstream: m, match: {}, admission: {} }\n");
  ASSERT_EQ(w.size(), 1u);
  EXPECT_THAT(w[0], ::testing::HasSubstr("route \"r\" has admission, but its upstream \"m\" has "
                                         "no saturation"));
  EXPECT_THAT(warningsFor("  - { name: r, upstream: m, match: { path: /a }, admission: {} }\n"
                          "  - { name: s, upstream: m, match: {}, admission: { adaptive: {} } }\n"),
              ::testing::IsEmpty());
}

}  // namespace
}  // namespace airbag::config
