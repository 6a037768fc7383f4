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

// Snapshot::build resolves upstream host names; only numeric hosts are built,
// so that the fuzzer never waits on DNS.
bool numericHosts(const airbag::Config& config) {
  for (const auto& u : config.upstreams) {
    unsigned char buf[16];
    if (inet_pton(AF_INET, u.host.c_str(), buf) != 1 &&
        inet_pton(AF_INET6, u.host.c_str(), buf) != 1)
      return false;
  }
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

  if (numericHosts(**config)) {
    auto snapshot = airbag::pipeline::Snapshot::build(*config);
    if (!snapshot.ok())
      fail("a config that loads does not build", snapshot.status().ToString(), yaml);
  }
  return 0;
}
