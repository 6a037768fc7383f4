// Entry point of the demo model server: flags, signals, and the event loop.
#include <event2/event.h>

#include <csignal>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

#include "absl/strings/numbers.h"
#include "server.h"

namespace {

constexpr char kUsage[] =
    "usage: demo-model-server [--listen HOST:PORT] [--name NAME] [--seed N] [--help]\n"
    "\n"
    "A deterministic stand-in for a model server (OpenAI-compatible, KServe v2, generic\n"
    "/predict, NDJSON streams) whose faults and latency are steered at run time through\n"
    "/control/behavior. See README.md next to the sources.\n"
    "\n"
    "  --listen HOST:PORT  address to listen on (default 127.0.0.1:8000; port 0 = any free)\n"
    "  --name NAME         model name reported in answers and x-demo-server (default model)\n"
    "  --seed N            seed of scores and of random fault decisions (default 0)\n";

struct EventBaseDeleter {
  void operator()(event_base* b) const { event_base_free(b); }
};
struct EventDeleter {
  void operator()(event* e) const { event_free(e); }
};

void onSignal(evutil_socket_t, short, void* arg) {
  event_base_loopbreak(static_cast<event_base*>(arg));
}

// Accepts "--flag value" and "--flag=value". Returns false on a usage error.
bool parseArgs(int argc, char** argv, demo::Options& options, bool& help) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      help = true;
      return true;
    }
    std::string_view value;
    const size_t eq = arg.find('=');
    std::string_view flag = arg.substr(0, eq);
    if (eq != std::string_view::npos) {
      value = arg.substr(eq + 1);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      std::fprintf(stderr, "demo-model-server: %s needs a value\n", argv[i]);
      return false;
    }
    if (flag == "--listen") {
      options.listen = std::string(value);
    } else if (flag == "--name") {
      if (value.empty()) {
        std::fprintf(stderr, "demo-model-server: --name must not be empty\n");
        return false;
      }
      options.name = std::string(value);
    } else if (flag == "--seed") {
      if (!absl::SimpleAtoi(absl::string_view(value.data(), value.size()), &options.seed)) {
        std::fprintf(stderr, "demo-model-server: --seed expects an unsigned integer\n");
        return false;
      }
    } else {
      std::fprintf(stderr, "demo-model-server: unknown flag %.*s\n%s",
                   static_cast<int>(flag.size()), flag.data(), kUsage);
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  demo::Options options;
  bool help = false;
  if (!parseArgs(argc, argv, options, help)) return 2;
  if (help) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  std::signal(SIGPIPE, SIG_IGN);

  std::unique_ptr<event_base, EventBaseDeleter> base(event_base_new());
  if (!base) {
    std::fprintf(stderr, "demo-model-server: cannot create the event loop\n");
    return 1;
  }
  std::unique_ptr<event, EventDeleter> on_term(
      evsignal_new(base.get(), SIGTERM, onSignal, base.get()));
  std::unique_ptr<event, EventDeleter> on_int(
      evsignal_new(base.get(), SIGINT, onSignal, base.get()));
  evsignal_add(on_term.get(), nullptr);
  evsignal_add(on_int.get(), nullptr);

  absl::StatusOr<std::unique_ptr<demo::Server>> created = demo::Server::create(base.get(), options);
  if (!created.ok()) {
    std::fprintf(stderr, "demo-model-server: %s\n",
                 std::string(created.status().message()).c_str());
    return 1;
  }
  std::unique_ptr<demo::Server> server = std::move(created).value();
  std::printf("demo-model-server listening on %s\n", server->boundAddress().c_str());
  std::fflush(stdout);

  event_base_dispatch(base.get());
  server.reset();  // connections and listener go before the loop they live on
  return 0;
}
