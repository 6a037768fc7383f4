// A real redis-server (Debian's) for tests: on a free 127.0.0.1 port, no
// persistence, killed with the test; and a Redis Cluster of them, plain or
// TLS. Header-only on top of the harness.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tests/integration/harness.h"
#include "tests/integration/tls_certs.h"

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
    // A Redis Cluster node (its bus on another free port), no slots yet; with TLS its bus and
    // replication speak TLS too, and it announces its TLS port.
    bool cluster = false;

    // TLS only, with the leaf `leaf` of `certs` (made with Certs::leaf) and their CA.
    static Options tls(const Certs& certs, const std::string& leaf) {
      Options o;
      o.tls_cert = certs.path(leaf + ".pem");
      o.tls_key = certs.path(leaf + ".key");
      o.tls_ca = certs.path("ca.pem");
      return o;
    }
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
    std::vector<std::string> argv = {"-h", "127.0.0.1", "-p", std::to_string(port_)};
    if (!options_.password.empty()) {
      argv.push_back("--no-auth-warning");
      argv.push_back("-a");
      argv.push_back(options_.password);
    }
    for (std::string& a : args) argv.push_back(std::move(a));
    return runCli(options_, std::move(argv), timeout);
  }

  // Runs redis-cli with `args` as a client of servers started with `options` (TLS: checked
  // against their CA); its standard output.
  static absl::StatusOr<std::string> runCli(const Options& options, std::vector<std::string> args,
                                            milliseconds timeout) {
    std::vector<std::string> argv = {"redis-cli"};
    if (!options.tls_cert.empty()) {
      argv.push_back("--tls");
      argv.push_back("--cacert");
      argv.push_back(options.tls_ca);
    }
    for (std::string& a : args) argv.push_back(std::move(a));
    absl::StatusOr<CommandResult> r = runCommand(std::move(argv), timeout);
    if (!r.ok()) return r.status();
    if (!r->exit.success())
      return absl::InternalError(
          absl::StrCat("redis-cli: ", r->exit.toString(), " ", r->err, r->out));
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
      // Redis 7 then names the TLS port to TLS clients in CLUSTER SLOTS, MOVED and ASK.
      if (!options_.tls_cert.empty())
        argv.insert(argv.end(), {"--tls-cluster", "yes", "--tls-replication", "yes"});
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

// A Redis Cluster of masters joined by `redis-cli --cluster create`, ready
// once every node says cluster_state:ok.
class RedisCluster {
 public:
  // `masters` plain nodes.
  static absl::StatusOr<std::unique_ptr<RedisCluster>> start(int masters = 3) {
    return start(std::vector<RedisServer::Options>(masters));
  }
  // One master per entry of `nodes` (TLS when the entries say so: every node alike, or at least
  // under one CA, the first's, which redis-cli checks them with).
  static absl::StatusOr<std::unique_ptr<RedisCluster>> start(
      std::vector<RedisServer::Options> nodes) {
    std::unique_ptr<RedisCluster> c(new RedisCluster());
    std::vector<std::string> create = {"--cluster", "create"};
    for (RedisServer::Options& options : nodes) {
      options.cluster = true;
      auto node = RedisServer::start(options);
      if (!node.ok()) return node.status();
      create.push_back("127.0.0.1:" + std::to_string((*node)->port()));
      c->nodes_.push_back(*std::move(node));
    }
    create.push_back("--cluster-yes");
    auto made = RedisServer::runCli(nodes.front(), create, milliseconds(30000));
    if (!made.ok()) return made.status();
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

  // The keys matching `pattern` on every node, each with the index of the node that holds it.
  std::map<std::string, int> keys(const std::string& pattern) const {
    std::map<std::string, int> k;
    for (size_t i = 0; i < nodes_.size(); ++i)
      for (std::string& key : nodes_[i]->scan(pattern)) k[std::move(key)] = static_cast<int>(i);
    return k;
  }

 private:
  RedisCluster() = default;
  std::vector<std::unique_ptr<RedisServer>> nodes_;
};

}  // namespace airbag::testing
