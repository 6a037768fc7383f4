// One worker's client of the shared cache tier: one connection to Redis on
// the worker's own loop (our non-blocking socket; hiredis only encodes and
// parses), commands pipelined in order, each with its own deadline on the
// worker's Dispatcher. Nothing here ever blocks the loop. Worker thread only.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "absl/types/span.h"
#include "airbag/dispatcher.h"
#include "proxy/http/stream_socket.h"
#include "proxy/shared_cache/resp.h"
#include "proxy/shared_cache/tier.h"

struct event_base;
namespace spdlog {
class logger;
}

namespace airbag::shared_cache {

class Cluster;

struct Result {
  enum class Kind : uint8_t {
    kReply,    // Redis answered (maybe with an error reply)
    kTimeout,  // no answer by the command's deadline
    kFailed,   // the connection failed or could not be made
  };
  Kind kind = Kind::kFailed;
  Reply reply;  // kReply only
  bool ok() const { return kind == Kind::kReply && !reply.isError(); }
};
using Callback = std::function<void(Result&& result)>;

class Client final : private http::StreamSocket::Listener, private TimerCallback {
 public:
  // `base`, `dispatcher` and `tier` must outlive the client.
  Client(event_base* base, Dispatcher& dispatcher, std::shared_ptr<const Tier> tier,
         std::shared_ptr<spdlog::logger> logger);
  // Pending callbacks are dropped, not called.
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Sends one command (binary-safe arguments). `done` gets its result exactly
  // once, always from the loop and never from inside this call, unless the
  // client is destroyed first. Returns false, and never calls `done`, when
  // the breaker is open or too many commands wait: the caller treats that as
  // a miss. A reply, even an error reply, counts as success for the breaker
  // (Redis is there); a timeout or a failed connection as failure.
  bool command(std::initializer_list<std::string_view> args, absl::Duration timeout,
               Callback done) {
    return command(absl::MakeConstSpan(args.begin(), args.size()), timeout, std::move(done));
  }
  // With `tier.settings().cluster`, each command goes to the master of its
  // key's hash slot (cluster.h); callers need not know.
  bool command(absl::Span<const std::string_view> args, absl::Duration timeout, Callback done);

  const Tier& tier() const { return *tier_; }
  absl::Time now() const { return dispatcher_.now(); }
  // Cluster mode: the router, which also reaches each node directly; else null.
  Cluster* cluster() const { return cluster_.get(); }
  bool connected() const { return state_ == State::kReady; }
  // Commands written and not yet answered (including ones that timed out).
  size_t pending() const { return queue_.size(); }

 private:
  enum class State { kIdle, kConnecting, kReady };
  struct Pending {
    Callback done;  // empty once the result was given (a timeout) or internal
    absl::Time sent;
    absl::Time deadline;
    bool probe = false;
    bool counted = false;  // the breaker has its verdict
  };

  void connect(absl::Time now);
  void onReadable() override;
  void onWriteError(int error) override;
  void onConnected(int error) override;
  void onTimer() override;
  // Drops the connection; every waiting command fails (from the loop).
  void fail(std::string_view why);
  void complete(Pending& p, Result&& r, absl::Time now);
  void armTimer();
  void logBreaker(absl::Time now);

  event_base* base_;
  Dispatcher& dispatcher_;
  std::shared_ptr<const Tier> tier_;
  std::shared_ptr<spdlog::logger> logger_;
  std::unique_ptr<http::StreamSocket> socket_;
  std::unique_ptr<ReplyReader> reader_;
  std::unique_ptr<Timer> timer_;
  State state_ = State::kIdle;
  std::deque<Pending> queue_;     // in the order written; replies come in this order
  std::deque<Pending> failing_;   // failed with the connection, reported from the loop
  std::string out_;
  bool logged_down_ = false;  // one line per outage of the connection, not per command
  std::unique_ptr<Cluster> cluster_;  // cluster mode: the router; this client sends nothing
};

}  // namespace airbag::shared_cache
