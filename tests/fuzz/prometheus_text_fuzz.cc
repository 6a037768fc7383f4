// Fuzzes the Prometheus text parser that reads the model server's /metrics
// (untrusted: whatever answers on that port) and the saturation verdict built
// on it. Nothing may crash; every sample delivered has a valid metric name
// and labels within its own line; a scrape that does not parse is never
// judged saturated; and parsing is line by line: the whole text yields the
// samples of its lines, in order.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "airbag/config.h"
#include "proxy/upstream/prometheus_text.h"
#include "proxy/upstream/upstream_saturation.h"

namespace {

[[noreturn]] void fail(const char* what, std::string_view input) {
  std::fprintf(stderr, "prometheus_text_fuzz: %s\ninput [%.*s]\n", what,
               static_cast<int>(input.size()), input.data());
  std::abort();
}

bool validName(std::string_view n) {
  if (n.empty()) return false;
  for (size_t i = 0; i < n.size(); ++i) {
    char c = n[i];
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  using airbag::upstream::PromSample;
  std::vector<std::string> whole;
  absl::Status s = airbag::upstream::forEachPromSample(text, [&](const PromSample& p) {
    if (!validName(p.name)) fail("a sample with an invalid name", text);
    if (p.labels.find('\n') != std::string_view::npos) fail("labels across lines", text);
    whole.push_back(std::string(p.name));
  });
  if (s.ok()) {
    std::vector<std::string> by_line;
    std::string_view rest = text;
    while (!rest.empty()) {
      size_t nl = rest.find('\n');
      std::string_view line = rest.substr(0, nl);
      rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
      absl::Status one = airbag::upstream::forEachPromSample(
          line, [&](const PromSample& p) { by_line.push_back(std::string(p.name)); });
      if (!one.ok()) fail("the whole parses but one of its lines does not", text);
    }
    if (by_line != whole) fail("line-by-line samples differ from the whole", text);
  }

  airbag::SaturationConfig config;
  config.when_any = {{"vllm:num_requests_waiting", 8, {}}, {"a", -1e300, {}}};
  std::vector<airbag::upstream::SaturationReading> readings;
  std::string error;
  airbag::upstream::SaturationState state =
      airbag::upstream::judgeSaturation(config, text, readings, error);
  if (!s.ok() && state != airbag::upstream::SaturationState::kUnknown)
    fail("a scrape that does not parse was judged", text);
  if (readings.size() != 2) fail("one reading per threshold", text);
  return 0;
}
