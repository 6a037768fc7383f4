// airbag's command line: run a config, check one, or say what it is.
#include <cstdio>
#include <cstring>
#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "airbag/version.h"
#include "proxy/config/config_loader.h"
#include "proxy/config/config_warnings.h"
#include "proxy/server/server.h"

namespace {

constexpr char kUsage[] =
    "usage: airbag -c FILE            run with the configuration in FILE\n"
    "       airbag --check-config FILE validate FILE, print every error, exit non-zero if any\n"
    "       airbag --version           print the version\n"
    "       airbag --help              print this help\n"
    "options:\n"
    "       --drain-grace DURATION     time in-flight requests get after SIGTERM (default 30s)\n";

int usageError(const char* what) {
  std::fprintf(stderr, "airbag: %s\n%s", what, kUsage);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  // Debian's abseil is built with deadlock detection on, which records a
  // lock graph on every Mutex::Lock (~30% of the locking cost). Our locks
  // are leaf locks held for a few instructions; the graph buys nothing.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  std::string config_path;
  std::string check_path;
  airbag::server::ServerOptions options;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&](const char* flag) -> const char* {
      if (i + 1 >= argc) return nullptr;
      (void)flag;
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a == "--version") {
      std::printf("airbag %s\n", airbag::kVersion);
      return 0;
    } else if (a == "-c" || a == "--config") {
      const char* v = value("-c");
      if (!v) return usageError("-c needs a file");
      config_path = v;
    } else if (a == "--check-config") {
      const char* v = value("--check-config");
      if (!v) return usageError("--check-config needs a file");
      check_path = v;
    } else if (a == "--drain-grace") {
      const char* v = value("--drain-grace");
      absl::Duration d;
      if (!v || !absl::ParseDuration(v, &d) || d < absl::ZeroDuration())
        return usageError("--drain-grace needs a duration such as 30s");
      options.drain_grace = d;
    } else {
      std::string msg = "unknown argument '" + std::string(a) + "'";
      return usageError(msg.c_str());
    }
  }

  if (!check_path.empty()) {
    auto config = airbag::config::loadFile(check_path);
    if (!config.ok()) {
      std::fprintf(stderr, "%s\n", std::string(config.status().message()).c_str());
      return 1;
    }
    for (const std::string& w : airbag::config::configWarnings(**config))
      std::fprintf(stderr, "%s\n", w.c_str());
    std::printf("%s: configuration is valid (%zu route(s), %zu upstream(s))\n", check_path.c_str(),
                (*config)->routes.size(), (*config)->upstreams.size());
    return 0;
  }
  if (config_path.empty()) return usageError("no configuration given");

  auto config = airbag::config::loadFile(config_path);
  if (!config.ok()) {
    std::fprintf(stderr, "%s\n", std::string(config.status().message()).c_str());
    return 1;
  }
  for (const std::string& w : airbag::config::configWarnings(**config))
    std::fprintf(stderr, "%s\n", w.c_str());
  auto rc = airbag::server::runServer(*config, options);
  if (!rc.ok()) {
    std::fprintf(stderr, "airbag: %s\n", std::string(rc.status().message()).c_str());
    return 1;
  }
  return *rc;
}
