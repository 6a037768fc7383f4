// Tests of how a reload treats the settings read only at start.
#include "proxy/config/restart_only.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxy/config/config_loader.h"

namespace airbag::config {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr std::string_view kRoutes =
    "upstreams: {m: {url: \"http://h:1\"}}\nroutes: [{name: r, upstream: m, match: {}}]\n";

Config load(std::string_view head) {
  auto c = loadString(std::string(head) + std::string(kRoutes), "a.yaml");
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? **c : Config{};
}

TEST(KeepRestartOnlyTest, NothingChangedNoWarnings) {
  const Config running = load("listen: {address: \"127.0.0.1:8080\"}\n");
  Config next = load("listen: {address: \"127.0.0.1:8080\"}\nlog: {level: debug}\n");
  EXPECT_THAT(keepRestartOnly(running, next), IsEmpty());
  EXPECT_EQ(next.log.level, "debug");  // applied at reload, not kept
}

TEST(KeepRestartOnlyTest, KeepsTheRunningValuesAndNamesEachChangedKey) {
  const Config running = load(
      "listen: {address: \"127.0.0.1:8080\", workers: 2}\n"
      "admin: {address: \"127.0.0.1:9901\"}\n"
      "log: {level: info, access_log: stdout, format: json}\n");
  Config next = load(
      "listen: {address: \"127.0.0.1:9000\", workers: auto, tls: {cert: c, key: k},"
      " limits: {max_header_bytes: 8KiB}}\n"
      "admin: {address: \"127.0.0.1:9902\", token_file: /secret/t}\n"
      "log: {level: warn, access_log: off, format: text}\n");
  EXPECT_THAT(
      keepRestartOnly(running, next),
      ElementsAre(
          "listen.address changed to 127.0.0.1:9000 in the file; 127.0.0.1:8080 stays in "
          "force until a restart",
          "listen.workers changed to auto in the file; 2 stays in force until a restart",
          "listen.tls changed to TLS on listen.address in the file; no TLS stays in force until "
          "a restart",
          "admin.address changed to 127.0.0.1:9902 in the file; 127.0.0.1:9901 stays in force "
          "until a restart",
          "admin.token_file changed in the file; the running value stays in force until a "
          "restart",
          "log.access_log changed to off in the file; stdout stays in force until a restart",
          "log.format changed to text in the file; json stays in force until a restart"));
  EXPECT_EQ(next.listen.address, "127.0.0.1:8080");
  EXPECT_EQ(next.listen.bind.port, 8080);
  EXPECT_EQ(next.listen.workers, 2);
  EXPECT_FALSE(next.listen.tls.has_value());
  EXPECT_EQ(next.admin.address, "127.0.0.1:9901");
  EXPECT_EQ(next.admin.bind.port, 9901);
  EXPECT_EQ(next.admin.token_file, "");
  EXPECT_EQ(next.log.access_log, "stdout");
  EXPECT_EQ(next.log.format, LogFormat::kJson);
  // What a reload does apply is left as the file says.
  EXPECT_EQ(next.log.level, "warn");
  EXPECT_EQ(next.listen.limits.max_header_bytes, 8u * 1024);
}

TEST(KeepRestartOnlyTest, TlsFilesApplyButTheTlsListenerStays) {
  const Config running = load(
      "listen: {address: \"127.0.0.1:8080\", tls: {address: \"127.0.0.1:8443\", cert: a.crt,"
      " key: a.key}}\n");
  Config next = load(
      "listen: {address: \"127.0.0.1:8080\", tls: {address: \"127.0.0.1:8443\", cert: b.crt,"
      " key: b.key, client_ca: ca.pem, min_version: \"1.3\"}}\n");
  EXPECT_THAT(keepRestartOnly(running, next), ::testing::IsEmpty());
  ASSERT_TRUE(next.listen.tls.has_value());
  EXPECT_EQ(next.listen.tls->cert, "b.crt");
  EXPECT_EQ(next.listen.tls->client_ca, "ca.pem");
  EXPECT_EQ(next.listen.tls->min_version, "1.3");

  Config moved = load(
      "listen: {address: \"127.0.0.1:8080\", tls: {address: \"127.0.0.1:9443\", cert: b.crt,"
      " key: b.key}}\n");
  EXPECT_THAT(keepRestartOnly(running, moved),
              ElementsAre("listen.tls changed to TLS on 127.0.0.1:9443 in the file; TLS on "
                          "127.0.0.1:8443 stays in force until a restart"));
  EXPECT_EQ(moved.listen.tls->address, "127.0.0.1:8443");
  EXPECT_EQ(moved.listen.tls->cert, "a.crt");
}

}  // namespace
}  // namespace airbag::config
