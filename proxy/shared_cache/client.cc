// The shared tier's per-worker Redis connection: pipelined commands, per-
// command deadlines, failures reported from the loop, the breaker fed.
#include "proxy/shared_cache/client.h"

#include <array>
#include <cerrno>
#include <cstring>
#include <utility>

#include "proxy/shared_cache/cluster.h"
#include "spdlog/spdlog.h"

namespace airbag::shared_cache {

Client::Client(event_base* base, Dispatcher& dispatcher, std::shared_ptr<const Tier> tier,
               std::shared_ptr<spdlog::logger> logger)
    : base_(base),
      dispatcher_(dispatcher),
      tier_(std::move(tier)),
      logger_(std::move(logger)),
      timer_(dispatcher.createTimer(this)) {
  if (tier_->settings().cluster)
    cluster_ = std::make_unique<Cluster>(base, dispatcher, tier_, logger_);
}

Client::~Client() {
  timer_->disarm();
  if (socket_) socket_->close();
  for (auto* q : {&queue_, &failing_})
    for (Pending& p : *q)
      if (!p.counted) tier_->breaker().onAbandoned(p.probe);
}

bool Client::command(absl::Span<const std::string_view> args, absl::Duration timeout,
                     Callback done) {
  if (cluster_) return cluster_->command(args, timeout, std::move(done));
  absl::Time now = dispatcher_.now();
  if (queue_.size() + failing_.size() >= tier_->settings().max_pending) return false;
  policy::CircuitBreaker::Permit permit = tier_->breaker().tryAcquire(now);
  if (!permit.allowed) return false;
  if (state_ == State::kIdle) connect(now);
  Pending p{std::move(done), now, now + timeout, permit.probe};
  if (state_ == State::kIdle) {  // no socket could be made: fail it from the loop
    failing_.push_back(std::move(p));
    armTimer();
    return true;
  }
  out_.clear();
  appendCommand(out_, args);
  socket_->write({out_});
  queue_.push_back(std::move(p));
  armTimer();
  return true;
}

void Client::connect(absl::Time now) {
  const TierSettings& s = tier_->settings();
  socket_ = std::make_unique<http::StreamSocket>(base_, static_cast<http::StreamSocket::Listener*>(this));
  reader_ = std::make_unique<ReplyReader>();
  http::TlsClientTarget tls;  // rediss://
  if (s.tls) {
    tls.ctx = s.tls->ctx.get();
    tls.name = s.tls_name;
  }
  if (!socket_->connect(reinterpret_cast<const sockaddr*>(&s.address), s.address_len,
                        s.connect_timeout, s.tls ? &tls : nullptr)) {
    socket_.reset();
    return;
  }
  state_ = State::kConnecting;
  socket_->setReading(true);
  // Log in and pick the database first: pipelined ahead of everything else,
  // answered before anything else. Their replies are checked like any other.
  auto internal = [this](Result&& r) {
    if (r.kind == Result::Kind::kReply && r.reply.isError())
      fail(r.reply.str);
  };
  if (!s.password.empty()) {
    out_.clear();
    if (s.username.empty())
      appendCommand(out_, {"AUTH", s.password});
    else
      appendCommand(out_, {"AUTH", s.username, s.password});
    socket_->write({out_});
    queue_.push_back(Pending{internal, now, now + s.connect_timeout, false, true});
  }
  if (s.db != 0) {
    out_.clear();
    std::string db = std::to_string(s.db);
    appendCommand(out_, {"SELECT", db});
    socket_->write({out_});
    queue_.push_back(Pending{internal, now, now + s.connect_timeout, false, true});
  }
}

void Client::onConnected(int error) {
  if (error != 0) {
    std::string tls = socket_->tlsError();  // rediss://: why the handshake failed
    fail(std::string("connect: ") + (tls.empty() ? std::strerror(error) : tls));
    return;
  }
  state_ = State::kReady;
  if (logged_down_ && logger_) logger_->info("shared cache: connected to {}", tier_->settings().url);
  logged_down_ = false;
}

void Client::onReadable() {
  std::array<char, 16384> buf;
  absl::Time now = dispatcher_.now();
  for (;;) {
    ssize_t n = socket_->read(buf.data(), buf.size());
    if (n == http::StreamSocket::kWouldBlock) break;
    if (n <= 0) {
      fail(n == 0 ? "closed by Redis" : std::strerror(errno));
      return;
    }
    if (!reader_->feed(std::string_view(buf.data(), static_cast<size_t>(n)))) {
      fail("not the Redis protocol");
      return;
    }
    bool broken = false;
    while (std::optional<Reply> reply = reader_->next(&broken)) {
      if (queue_.empty()) {
        fail("a reply to no command");
        return;
      }
      Pending p = std::move(queue_.front());
      queue_.pop_front();
      complete(p, Result{Result::Kind::kReply, std::move(*reply)}, now);
      if (!socket_) return;  // an internal command's error dropped the connection
    }
    if (broken) {
      fail("not the Redis protocol");
      return;
    }
    if (static_cast<size_t>(n) < buf.size()) break;
  }
  armTimer();
}

void Client::onWriteError(int error) { fail(std::strerror(error)); }

void Client::complete(Pending& p, Result&& r, absl::Time now) {
  if (!p.counted) {
    p.counted = true;
    tier_->breaker().onResult(now, r.kind == Result::Kind::kReply, now - p.sent, p.probe);
    logBreaker(now);
  }
  if (p.done) {
    Callback done = std::move(p.done);
    p.done = nullptr;
    done(std::move(r));
  }
}

void Client::onTimer() {
  absl::Time now = dispatcher_.now();
  // Failures first: they were promised a call from the loop.
  std::deque<Pending> failing = std::move(failing_);
  failing_.clear();
  for (Pending& p : failing) complete(p, Result{Result::Kind::kFailed, {}}, now);
  // Commands past their deadline get a timeout now; their replies, when they
  // come, are read and dropped, so the connection stays in step.
  // By index: a callback may send a command, which appends to the queue.
  for (size_t i = 0; i < queue_.size(); ++i)
    if (!queue_[i].counted && queue_[i].deadline <= now)
      complete(queue_[i], Result{Result::Kind::kTimeout, {}}, now);
  armTimer();
}

void Client::armTimer() {
  absl::Time first = absl::InfiniteFuture();
  if (!failing_.empty()) first = dispatcher_.now();
  for (const Pending& p : queue_)
    if (!p.counted && p.deadline < first) first = p.deadline;
  if (first == absl::InfiniteFuture())
    timer_->disarm();
  else
    timer_->armAt(first);
}

void Client::fail(std::string_view why) {
  if (!logged_down_ && logger_)
    logger_->warn("shared cache: Redis at {}: {}; looking up in memory only until it is back",
                  tier_->settings().url, why);
  logged_down_ = true;
  if (socket_) {
    socket_->close();
    // Freed from the loop, not from inside one of its own callbacks.
    socket_.reset();
  }
  reader_.reset();
  state_ = State::kIdle;
  for (Pending& p : queue_) failing_.push_back(std::move(p));
  queue_.clear();
  armTimer();
}

void Client::logBreaker(absl::Time now) {
  bool open = false;
  if (!tier_->breakerChanged(now, &open) || !logger_) return;
  if (open)
    logger_->warn("shared cache: Redis at {} keeps failing; not asking it for a while",
                  tier_->settings().url);
  else
    logger_->info("shared cache: Redis at {} answers again", tier_->settings().url);
}

}  // namespace airbag::shared_cache
