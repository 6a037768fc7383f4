// Fuzzes the YAML configuration: config::loadString never crashes, and a
// config it accepts is one the runtime accepts too: Snapshot::build succeeds,
// and the GET /config rendering loads back as the same configuration.
#include <arpa/inet.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "proxy/config/config_json.h"
#include "proxy/config/config_loader.h"
#include "proxy/pipeline/snapshot.h"

namespace {

bool numeric(const std::string& host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

// Snapshot::build also meets the world outside the file: it resolves host
// names (upstreams, cache.shared.redis) and reads the files the config names
// (CA bundles, the Redis password file), as the start and a reload do, and
// either may rightly fail where the file's keys are all valid
// (docs/operations.md: --check-config checks the file, not the world). Only a
// config that needs neither is built, so a failure is the loader's fault
// alone and the fuzzer never waits on DNS.
bool hermetic(const airbag::Config& config) {
  for (const auto& u : config.upstreams)
    if (!numeric(u.host) || (u.tls && !u.tls->ca.empty())) return false;
  if (const auto& shared = config.cache.shared)
    if (!numeric(shared->host) || !shared->password_file.empty() || !shared->tls_settings.ca.empty())
      return false;
  return true;
}

[[noreturn]] void fail(const char* what, const std::string& detail, std::string_view input) {
  std::fprintf(stderr, "config_fuzz: %s\n%s\n--- input ---\n%.*s\n", what, detail.c_str(),
               static_cast<int>(input.size()), input.data());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view yaml(reinterpret_cast<const char*>(data), size);
  auto config = airbag::config::loadString(yaml, "fuzz.yaml");
  if (!config.ok()) return 0;

  const std::string rendered = airbag::config::toJson(**config);
  auto again = airbag::config::loadString(rendered, "config.json");
  if (!again.ok()) fail("GET /config does not load back", again.status().ToString(), yaml);
  const std::string rendered_again = airbag::config::toJson(**again);
  if (rendered_again != rendered)
    fail("GET /config loads back as a different config", rendered + "\n--- became ---\n" + rendered_again, yaml);

  if (hermetic(**config)) {
    auto snapshot = airbag::pipeline::Snapshot::build(*config);
    if (!snapshot.ok())
      fail("a config that loads does not build", snapshot.status().ToString(), yaml);
  }
  return 0;
}
