// The demo model server: an evconnlistener that hands each accepted socket to a Connection,
// plus the state all connections share (behaviour, counters, the seeded PRNG).
#pragma once

#include <event2/event.h>
#include <event2/listener.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <random>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "behavior.h"

namespace demo {

struct Options {
  std::string listen = "127.0.0.1:8000";
  std::string name = "model";
  uint64_t seed = 0;
};

// The random values one steerable request consumes, always drawn together and in this order so
// that a seed replays the same decisions for the same request order, whatever the behaviour.
struct Draws {
  double drop = 0;
  double error = 0;
  double jitter = 0;
};

class Connection;

// Single-threaded: every method runs on the loop of the event_base given to create().
class Server {
 public:
  // Binds and listens on options.listen ("host:port", port 0 picks a free one).
  static absl::StatusOr<std::unique_ptr<Server>> create(event_base* base, Options options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // "host:port" actually bound (the real port when 0 was asked for).
  const std::string& boundAddress() const { return bound_address_; }

  event_base* base() const { return base_; }
  const Options& options() const { return options_; }
  Stats& stats() { return stats_; }
  Behavior& behavior() { return behavior_; }
  Draws draw();
  // Zeroes the counters (gauges keep their live value), restores the default behaviour and
  // re-seeds the PRNG.
  void reset();
  // Destroys `connection`; the caller must not touch it afterwards.
  void release(Connection* connection);

  // Saturation mode (behaviour `capacity` > 0): the model's one queue.
  // `c` waits its turn; Connection::startService() runs when a slot is free
  // (perhaps at once).
  void enqueue(Connection* c);
  // `c` leaves the queue, or gives its slot back (which starts the next).
  void leave(Connection* c);
  // vLLM's gauges for the queue: GET /metrics.
  std::string metricsText() const;

 private:
  struct ListenerDeleter {
    void operator()(evconnlistener* l) const { evconnlistener_free(l); }
  };

  Server(event_base* base, Options options);
  static void acceptCb(evconnlistener* listener, evutil_socket_t fd, sockaddr* addr, int len,
                       void* arg);
  void onAccept(evutil_socket_t fd);
  // Starts waiting requests while the capacity allows.
  void admitWaiting();

  event_base* base_;
  Options options_;
  std::unique_ptr<evconnlistener, ListenerDeleter> listener_;
  std::string bound_address_;
  Stats stats_;
  Behavior behavior_;
  std::mt19937_64 rng_;
  absl::flat_hash_map<Connection*, std::unique_ptr<Connection>> connections_;
  std::deque<Connection*> waiting_;
  absl::flat_hash_set<Connection*> running_;
};

}  // namespace demo
