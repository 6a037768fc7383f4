// Every shipped example config must load; the quickstart must show the whole
// fallback ladder against the demo model server's ports.
#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxy/config/config_loader.h"

#ifndef AIRBAG_SOURCE_DIR
#error "AIRBAG_SOURCE_DIR must name the source tree"
#endif

namespace airbag::config {
namespace {

namespace fs = std::filesystem;

// examples/*.yaml and each family's examples/<family>/airbag.yaml (its values.yaml is the
// Helm chart's, not airbag's).
std::vector<fs::path> exampleFiles() {
  const fs::path root = fs::path(AIRBAG_SOURCE_DIR) / "examples";
  std::vector<fs::path> out;
  for (const fs::directory_entry& e : fs::directory_iterator(root)) {
    if (e.is_regular_file() && e.path().extension() == ".yaml") out.push_back(e.path());
    if (e.is_directory() && fs::exists(e.path() / "airbag.yaml")) {
      out.push_back(e.path() / "airbag.yaml");
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(ExamplesTest, EveryExampleLoads) {
  const std::vector<fs::path> files = exampleFiles();
  const fs::path root = fs::path(AIRBAG_SOURCE_DIR) / "examples";
  std::vector<std::string> names;
  for (const fs::path& p : files) names.push_back(fs::relative(p, root).string());
  EXPECT_THAT(names, ::testing::IsSupersetOf({"quickstart.yaml", "vllm/airbag.yaml",
                                              "kserve-triton/airbag.yaml", "torchserve/airbag.yaml",
                                              "tgi/airbag.yaml", "ollama/airbag.yaml"}));
  for (const fs::path& p : files) {
    absl::StatusOr<std::shared_ptr<const Config>> c = loadFile(p.string());
    EXPECT_TRUE(c.ok()) << c.status();
  }
}

TEST(ExamplesTest, QuickstartShowsTheWholeLadder) {
  auto c = loadFile((fs::path(AIRBAG_SOURCE_DIR) / "examples" / "quickstart.yaml").string());
  ASSERT_TRUE(c.ok()) << c.status();
  const Config& config = **c;
  EXPECT_EQ(config.listen.bind.host, "127.0.0.1");
  EXPECT_EQ(config.listen.bind.port, 8080);
  EXPECT_EQ(config.admin.bind.port, 9901);
  ASSERT_NE(config.findUpstream("model"), nullptr);
  EXPECT_EQ(config.findUpstream("model")->port, 8000);
  ASSERT_NE(config.findUpstream("small-model"), nullptr);
  EXPECT_EQ(config.findUpstream("small-model")->port, 8001);

  bool full_ladder = false;
  for (const RouteConfig& r : config.routes) {
    if (r.fallback.size() < 3 || !r.cache || !r.circuit_breaker || !r.validate) continue;
    full_ladder = r.fallback[0].kind == FallbackStep::Kind::kUpstream &&
                  r.fallback[0].upstream == "small-model" &&
                  r.fallback[1].kind == FallbackStep::Kind::kRules &&
                  r.fallback.back().kind == FallbackStep::Kind::kRespond;
    if (full_ladder) break;
  }
  EXPECT_TRUE(full_ladder) << "no route with cache, breaker, validate and the "
                              "small-model -> rules -> respond ladder";
}

}  // namespace
}  // namespace airbag::config
