// Tests of policy/cache_control: the upstream's Cache-Control against a route's
// cache windows, table-driven, and the request-side bypass.
#include "policy/cache_control.h"

#include <optional>
#include <string_view>

#include "gtest/gtest.h"

namespace airbag::policy {
namespace {

RouteCacheConfig routeConfig(bool respect = true) {
  RouteCacheConfig c;
  c.ttl = absl::Seconds(30);
  c.stale_while_revalidate = absl::Seconds(60);
  c.stale_if_error = absl::Seconds(600);
  c.respect_cache_control = respect;
  return c;
}

struct FreshnessCase {
  const char* name;
  std::optional<std::string_view> header;
  int64_t ttl_s;
  int64_t swr_s;
  int64_t sie_s;
  bool store;
};

class FreshnessTest : public ::testing::TestWithParam<FreshnessCase> {};

TEST_P(FreshnessTest, RouteWindowsOverriddenByCacheControl) {
  const FreshnessCase& c = GetParam();
  const Freshness f = freshnessFor(routeConfig(), c.header);
  EXPECT_EQ(f.ttl, absl::Seconds(c.ttl_s));
  EXPECT_EQ(f.stale_while_revalidate, absl::Seconds(c.swr_s));
  EXPECT_EQ(f.stale_if_error, absl::Seconds(c.sie_s));
  EXPECT_EQ(f.store, c.store);
}

// The route's defaults are ttl 30, swr 60, sie 600.
INSTANTIATE_TEST_SUITE_P(
    Table, FreshnessTest,
    ::testing::Values(
        FreshnessCase{"NoHeader", std::nullopt, 30, 60, 600, true},
        FreshnessCase{"EmptyHeader", "", 30, 60, 600, true},
        FreshnessCase{"OnlyCommasAndSpaces", " , ,, ", 30, 60, 600, true},
        FreshnessCase{"MaxAge", "max-age=5", 5, 60, 600, true},
        FreshnessCase{"MaxAgeZero", "max-age=0", 0, 60, 600, true},
        FreshnessCase{"SMaxageBeatsMaxAge", "max-age=5, s-maxage=7", 7, 60, 600, true},
        FreshnessCase{"SMaxageBeatsMaxAgeEitherOrder", "s-maxage=7, max-age=5", 7, 60, 600, true},
        FreshnessCase{"PublicMaxAge", "public, max-age=120", 120, 60, 600, true},
        FreshnessCase{"NoStore", "no-store", 30, 60, 600, false},
        FreshnessCase{"NoCache", "no-cache", 30, 60, 600, false},
        FreshnessCase{"Private", "private, max-age=10", 10, 60, 600, false},
        FreshnessCase{"PrivateWithQuotedFieldList", "private=\"set-cookie, x-a\", max-age=9", 9, 60,
                      600, false},
        FreshnessCase{"NoStoreAmongOthers", "max-age=10, no-store", 10, 60, 600, false},
        FreshnessCase{"UpperCase", "MAX-AGE=11, No-Store", 11, 60, 600, false},
        FreshnessCase{"Whitespace", "  max-age = 12 ,\tstale-if-error =\t3  ", 12, 60, 3, true},
        FreshnessCase{"QuotedValue", "max-age=\"13\"", 13, 60, 600, true},
        FreshnessCase{"QuotedValueWithSpace", "max-age= \"14\" , s-maxage=\"15\"", 15, 60, 600,
                      true},
        FreshnessCase{"StaleWindows", "max-age=1, stale-while-revalidate=2, stale-if-error=3", 1, 2,
                      3, true},
        FreshnessCase{"StaleWindowsZero", "stale-while-revalidate=0, stale-if-error=0", 30, 0, 0,
                      true},
        FreshnessCase{"InvalidMaxAgeIsStale", "max-age=abc", 0, 60, 600, true},
        FreshnessCase{"NegativeMaxAgeIsStale", "max-age=-5", 0, 60, 600, true},
        FreshnessCase{"EmptyMaxAgeIsStale", "max-age=", 0, 60, 600, true},
        FreshnessCase{"MaxAgeWithoutValueIsStale", "max-age", 0, 60, 600, true},
        FreshnessCase{"InvalidStaleWindowGrantsNothing", "stale-while-revalidate=x", 30, 0, 600,
                      true},
        FreshnessCase{"FirstOccurrenceWins", "max-age=5, max-age=50", 5, 60, 600, true},
        FreshnessCase{"HugeMaxAgeCapped", "max-age=99999999999999999999999", int64_t{1} << 31, 60,
                      600, true},
        FreshnessCase{"UnknownDirectivesIgnored", "foo, bar=baz, immutable, max-age=8", 8, 60, 600,
                      true},
        FreshnessCase{"UnknownQuotedWithComma", "ext=\"a,max-age=1\", max-age=8", 8, 60, 600, true},
        FreshnessCase{"EscapedQuote", "ext=\"a\\\"b,c\", max-age=4", 4, 60, 600, true},
        FreshnessCase{"EscapeInsideNumberIsInvalid", "max-age=\"1\\2\"", 0, 60, 600, true},
        FreshnessCase{"TrailingBackslashInQuote", "max-age=3, ext=\"a\\", 3, 60, 600, true},
        FreshnessCase{"UnterminatedQuote", "max-age=4, ext=\"abc", 4, 60, 600, true},
        FreshnessCase{"MustRevalidateDropsRouteStaleWindows", "max-age=6, must-revalidate", 6, 0, 0,
                      true},
        FreshnessCase{"ProxyRevalidate", "proxy-revalidate", 30, 0, 0, true},
        FreshnessCase{"ExplicitWindowsBeatMustRevalidate", "must-revalidate, stale-if-error=20", 30,
                      0, 20, true}),
    [](const ::testing::TestParamInfo<FreshnessCase>& info) { return info.param.name; });

TEST(FreshnessTest, IgnoresHeaderWhenRouteDoesNotRespectIt) {
  const Freshness f = freshnessFor(routeConfig(false), "no-store, max-age=1");
  EXPECT_TRUE(f.store);
  EXPECT_EQ(f.ttl, absl::Seconds(30));
  EXPECT_EQ(f.stale_while_revalidate, absl::Seconds(60));
  EXPECT_EQ(f.stale_if_error, absl::Seconds(600));
}

TEST(FreshnessTest, FinishedEventStreamIsStoredDespiteNoCacheButNotDespiteNoStore) {
  EXPECT_FALSE(freshnessFor(routeConfig(true), "no-cache").store);
  EXPECT_TRUE(freshnessFor(routeConfig(true), "no-cache", /*finished_event_stream=*/true).store);
  const Freshness f =
      freshnessFor(routeConfig(true), "no-cache, max-age=5", /*finished_event_stream=*/true);
  EXPECT_TRUE(f.store);
  EXPECT_EQ(f.ttl, absl::Seconds(5));
  EXPECT_FALSE(freshnessFor(routeConfig(true), "no-cache, no-store", true).store);
  EXPECT_FALSE(freshnessFor(routeConfig(true), "private", true).store);
}

struct BypassCase {
  const char* name;
  std::optional<std::string_view> header;
  bool bypass;
};

class BypassTest : public ::testing::TestWithParam<BypassCase> {};

TEST_P(BypassTest, NoCacheOrNoStoreBypasses) {
  EXPECT_EQ(requestBypassesCache(GetParam().header), GetParam().bypass);
}

INSTANTIATE_TEST_SUITE_P(
    Table, BypassTest,
    ::testing::Values(BypassCase{"Absent", std::nullopt, false}, BypassCase{"Empty", "", false},
                      BypassCase{"NoCache", "no-cache", true},
                      BypassCase{"NoStore", "no-store", true},
                      BypassCase{"CaseAndSpace", "  No-Cache  ", true},
                      BypassCase{"AmongOthers", "max-stale=5, no-store", true},
                      BypassCase{"MaxAgeOnly", "max-age=0", false},
                      BypassCase{"Prefix", "no-cacheable", false},
                      BypassCase{"InsideQuotedValue", "ext=\"no-cache\"", false}),
    [](const ::testing::TestParamInfo<BypassCase>& info) { return info.param.name; });

}  // namespace
}  // namespace airbag::policy
