// Table-driven tests of the config value syntaxes: durations, sizes, ratios
// and host:port.
#include "proxy/config/units.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace airbag::config {
namespace {

using ::testing::HasSubstr;

TEST(ParseDurationTest, AcceptsEveryUnit) {
  const struct {
    std::string text;
    absl::Duration want;
  } kCases[] = {
      {"250ms", absl::Milliseconds(250)}, {"2s", absl::Seconds(2)},
      {"5m", absl::Minutes(5)},           {"1h", absl::Hours(1)},
      {"0s", absl::ZeroDuration()},       {"1.5s", absl::Milliseconds(1500)},
      {"100us", absl::Microseconds(100)}, {"10ns", absl::Nanoseconds(10)},
      {"0.25s", absl::Milliseconds(250)}, {"1m30s", absl::Seconds(90)},
      {"1h2m3s", absl::Seconds(3723)},    {".5s", absl::Milliseconds(500)},
      {"+3s", absl::Seconds(3)},          {"0.001ms", absl::Microseconds(1)},
  };
  for (const auto& c : kCases) {
    absl::StatusOr<absl::Duration> got = parseDuration(c.text);
    ASSERT_TRUE(got.ok()) << c.text << ": " << got.status();
    EXPECT_EQ(*got, c.want) << c.text;
  }
}

TEST(ParseDurationTest, RejectsJunk) {
  const struct {
    std::string text;
    std::string why;
  } kCases[] = {
      {"", "empty"},
      {"250", "missing unit"},
      {"0", "missing unit"},
      {"-1s", "negative"},
      {"2sec", "unknown unit 'sec'"},
      {"2 s", "unknown unit ' s'"},
      {"s", "expected a number"},
      {"1.s", "digits after '.'"},
      {"1s-", "expected a number"},
      {"2d", "unknown unit 'd'"},
      {"99999999999999999999h", "too large"},
      {"1000000h", "too large"},
  };
  for (const auto& c : kCases) {
    absl::StatusOr<absl::Duration> got = parseDuration(c.text);
    ASSERT_FALSE(got.ok()) << "'" << c.text << "' parsed as " << *got;
    EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(got.status().message()), HasSubstr(c.why)) << c.text;
  }
}

TEST(ParseSizeTest, AcceptsBinaryAndDecimalUnits) {
  const struct {
    std::string text;
    uint64_t want;
  } kCases[] = {
      {"512", 512},
      {"512B", 512},
      {"0", 0},
      {"64KiB", 64 * 1024},
      {"16MiB", 16ull * 1024 * 1024},
      {"1GiB", 1ull << 30},
      {"2TiB", 2ull << 40},
      {"64KB", 64000},
      {"16MB", 16000000},
      {"1GB", 1000000000},
      {"1TB", 1000000000000ull},
      {"16mib", 16ull * 1024 * 1024},
      {"18446744073709551615", 18446744073709551615ull},
  };
  for (const auto& c : kCases) {
    absl::StatusOr<uint64_t> got = parseSize(c.text);
    ASSERT_TRUE(got.ok()) << c.text << ": " << got.status();
    EXPECT_EQ(*got, c.want) << c.text;
  }
}

TEST(ParseSizeTest, RejectsJunkAndOverflow) {
  const struct {
    std::string text;
    std::string why;
  } kCases[] = {
      {"", "empty"},
      {"-1", "negative"},
      {"KiB", "whole number"},
      {"1.5MiB", "whole numbers"},
      {"64 KiB", "unknown unit ' KiB'"},
      {"64XB", "unknown unit 'XB'"},
      {"18446744073709551616", "too large"},
      {"17179869184GiB", "too large"},
      {"16MiBs", "unknown unit"},
  };
  for (const auto& c : kCases) {
    absl::StatusOr<uint64_t> got = parseSize(c.text);
    ASSERT_FALSE(got.ok()) << "'" << c.text << "' parsed as " << *got;
    EXPECT_THAT(std::string(got.status().message()), HasSubstr(c.why)) << c.text;
  }
}

TEST(ParseRatioTest, AcceptsFractionsAndPercentages) {
  const struct {
    std::string text;
    double want;
  } kCases[] = {
      {"0.2", 0.2}, {"20%", 0.2}, {"0", 0.0},       {"1", 1.0},   {"100%", 1.0},
      {"0%", 0.0},  {".5", 0.5},  {"12.5%", 0.125}, {"1.0", 1.0},
  };
  for (const auto& c : kCases) {
    absl::StatusOr<double> got = parseRatio(c.text);
    ASSERT_TRUE(got.ok()) << c.text << ": " << got.status();
    EXPECT_DOUBLE_EQ(*got, c.want) << c.text;
  }
}

TEST(ParseRatioTest, RejectsOutOfRangeAndJunk) {
  const struct {
    std::string text;
    std::string why;
  } kCases[] = {
      {"", "empty"},
      {"1.2", "within 0..1"},
      {"120%", "within 0%..100%"},
      {"-0.1", "within 0..1"},
      {"-5%", "within 0%..100%"},
      {"nan", "expected a fraction"},
      {"inf", "expected a fraction"},
      {"0x1", "expected a fraction"},
      {"%", "expected a fraction"},
      {"20 %", "expected a fraction"},
      {"1e-1", "expected a fraction"},
  };
  for (const auto& c : kCases) {
    absl::StatusOr<double> got = parseRatio(c.text);
    ASSERT_FALSE(got.ok()) << "'" << c.text << "' parsed as " << *got;
    EXPECT_THAT(std::string(got.status().message()), HasSubstr(c.why)) << c.text;
  }
}

TEST(ParseHostPortTest, AcceptsHostsAndBracketedIpv6) {
  const struct {
    std::string text;
    std::string host;
    uint16_t port;
  } kCases[] = {
      {"0.0.0.0:8080", "0.0.0.0", 8080},
      {"[::1]:9901", "::1", 9901},
      {"localhost:80", "localhost", 80},
      {"127.0.0.1:0", "127.0.0.1", 0},
      {"[::]:65535", "::", 65535},
      {"model-server.svc_1:8000", "model-server.svc_1", 8000},
      {"[fe80::1%eth0]:80", "fe80::1%eth0", 80},
  };
  for (const auto& c : kCases) {
    absl::StatusOr<HostPort> got = parseHostPort(c.text);
    ASSERT_TRUE(got.ok()) << c.text << ": " << got.status();
    EXPECT_EQ(got->host, c.host) << c.text;
    EXPECT_EQ(got->port, c.port) << c.text;
  }
}

TEST(ParseHostPortTest, RejectsMalformedAddresses) {
  const struct {
    std::string text;
    std::string why;
  } kCases[] = {
      {"", "empty"},
      {"localhost", "missing ':port'"},
      {"localhost:", "missing port"},
      {":8080", "missing host"},
      {"::1:9901", "in brackets"},
      {"[::1]9901", "missing ':port'"},
      {"[::1:9901", "missing ']'"},
      {"[localhost]:80", "only for IPv6"},
      {"host:65536", "0..65535"},
      {"host:-1", "0..65535"},
      {"host:80x", "0..65535"},
      {"host:0080800", "0..65535"},
      {"ho st:80", "invalid character ' '"},
      {"http://host:80", "not a url"},
      {"[fe80::1%]:80", "empty IPv6 zone"},
      {"[::1%a b]:80", "invalid IPv6 address"},
  };
  for (const auto& c : kCases) {
    absl::StatusOr<HostPort> got = parseHostPort(c.text);
    ASSERT_FALSE(got.ok()) << "'" << c.text << "' parsed as " << got->host << ":" << got->port;
    EXPECT_THAT(std::string(got.status().message()), HasSubstr(c.why)) << c.text;
  }
}

}  // namespace
}  // namespace airbag::config
