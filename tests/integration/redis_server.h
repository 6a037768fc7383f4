// A real redis-server (Debian's) for tests: on a free 127.0.0.1 port, no
// persistence, killed with the test. Header-only on top of the harness.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tests/integration/harness.h"

namespace airbag::testing {

class RedisServer {
 public:
  struct Options {
    std::string password;  // requirepass, when not empty
    // TLS only (rediss://) when set: the server's certificate and key, and the CA redis-cli
    // checks it with. Clients are not asked for a certificate.
    std::string tls_cert;
    std::string tls_key;
    std::string tls_ca;
    bool cluster = false;  // a Redis Cluster node (its bus on another free port), no slots yet
  };

  static absl::StatusOr<std::unique_ptr<RedisServer>> start() { return start(Options{}); }
  static absl::StatusOr<std::unique_ptr<RedisServer>> start(Options options) {
    std::unique_ptr<RedisServer> r(new RedisServer());
    r->options_ = std::move(options);
    absl::StatusOr<std::unique_ptr<TempDir>> dir = TempDir::create("airbag-redis");
    if (!dir.ok()) return dir.status();
    r->dir_ = *std::move(dir);
    // Another process may take the free port first: try a few.
    absl::Status last = absl::UnavailableError("no attempt");
    for (int i = 0; i < 5; ++i) {
      r->port_ = freePort();
      r->bus_port_ = 0;
      last = r->launch();
      if (last.ok()) return r;
    }
    return last;
  }

  int port() const { return port_; }
  std::string url() const {
    return absl::StrCat(options_.tls_cert.empty() ? "redis" : "rediss", "://127.0.0.1:", port_);
  }
  Process& process() { return *process_; }

  // Kills the server (SIGKILL, as a crash would).
  void kill() {
    if (process_) process_->kill();
    process_.reset();
  }
  // Starts it again on the same port, empty.
  absl::Status restart() {
    kill();
    return launch();
  }

  // The keys matching `pattern` (redis-cli --scan); empty if redis-cli fails.
  std::vector<std::string> scan(const std::string& pattern) const {
    std::vector<std::string> keys;
    absl::StatusOr<std::string> out = cli({"--scan", "--pattern", pattern});
    if (!out.ok()) return keys;
    for (absl::string_view l : absl::StrSplit(*out, '\n', absl::SkipWhitespace()))
      keys.emplace_back(absl::StripAsciiWhitespace(l));
    return keys;
  }

  // Runs redis-cli against the server; its standard output.
  absl::StatusOr<std::string> cli(std::vector<std::string> args,
                                  milliseconds timeout = milliseconds(10000)) const {
    std::vector<std::string> argv = {"redis-cli", "-h", "127.0.0.1", "-p",
                                     std::to_string(port_)};
    if (!options_.password.empty()) {
      argv.push_back("--no-auth-warning");
      argv.push_back("-a");
      argv.push_back(options_.password);
    }
    if (!options_.tls_cert.empty()) {
      argv.push_back("--tls");
      argv.push_back("--cacert");
      argv.push_back(options_.tls_ca);
    }
    for (std::string& a : args) argv.push_back(std::move(a));
    absl::StatusOr<CommandResult> r = runCommand(std::move(argv), timeout);
    if (!r.ok()) return r.status();
    if (!r->exit.success())
      return absl::InternalError(absl::StrCat("redis-cli: ", r->exit.toString(), " ", r->err));
    return r->out;
  }

 private:
  RedisServer() = default;

  absl::Status launch() {
    std::vector<std::string> argv = {"redis-server",     "--port",         std::to_string(port_),
                                     "--bind",           "127.0.0.1",      "--save",
                                     "",                 "--appendonly",   "no",
                                     "--dir",            dir_->path().string(),
                                     "--enable-debug-command", "local", "--protected-mode", "no"};
    if (!options_.password.empty()) {
      argv.push_back("--requirepass");
      argv.push_back(options_.password);
    }
    if (!options_.tls_cert.empty()) {
      argv[2] = "0";  // no plain port
      argv.insert(argv.end(), {"--tls-port", std::to_string(port_), "--tls-cert-file",
                               options_.tls_cert, "--tls-key-file", options_.tls_key,
                               "--tls-ca-cert-file", options_.tls_ca, "--tls-auth-clients", "no"});
    }
    if (options_.cluster) {
      if (bus_port_ == 0) bus_port_ = freePort();
      for (std::string a : {"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                            "--cluster-node-timeout", "5000"})
        argv.push_back(std::move(a));
      argv.push_back("--cluster-port");
      argv.push_back(std::to_string(bus_port_));
    }
    absl::StatusOr<std::unique_ptr<Process>> p = Process::spawn(std::move(argv));
    if (!p.ok()) return p.status();
    process_ = *std::move(p);
    if (!waitForPort(port_, milliseconds(10000)) || !process_->running()) {
      process_.reset();
      return absl::UnavailableError(absl::StrCat("redis-server did not listen on ", port_));
    }
    return absl::OkStatus();
  }

  Options options_;
  int port_ = 0;
  int bus_port_ = 0;  // cluster only
  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<Process> process_;
};

// A Redis Cluster of `masters` nodes joined by `redis-cli --cluster create`,
// ready once every node says cluster_state:ok.
class RedisCluster {
 public:
  static absl::StatusOr<std::unique_ptr<RedisCluster>> start(int masters = 3) {
    std::unique_ptr<RedisCluster> c(new RedisCluster());
    std::vector<std::string> create = {"redis-cli", "--cluster", "create"};
    for (int i = 0; i < masters; ++i) {
      RedisServer::Options options;
      options.cluster = true;
      auto node = RedisServer::start(options);
      if (!node.ok()) return node.status();
      create.push_back("127.0.0.1:" + std::to_string((*node)->port()));
      c->nodes_.push_back(*std::move(node));
    }
    create.push_back("--cluster-yes");
    auto made = runCommand(create, milliseconds(30000));
    if (!made.ok()) return made.status();
    if (!made->exit.success())
      return absl::InternalError(absl::StrCat("redis-cli --cluster create: ", made->out, made->err));
    bool ok = pollUntil(
        [&] {
          for (auto& n : c->nodes_) {
            auto info = n->cli({"CLUSTER", "INFO"});
            if (!info.ok() || info->find("cluster_state:ok") == std::string::npos) return false;
          }
          return true;
        },
        scaled(milliseconds(20000)), milliseconds(50));
    if (!ok) return absl::UnavailableError("the cluster did not reach cluster_state:ok");
    return c;
  }

  std::vector<std::unique_ptr<RedisServer>>& nodes() { return nodes_; }

 private:
  RedisCluster() = default;
  std::vector<std::unique_ptr<RedisServer>> nodes_;
};

}  // namespace airbag::testing
