// Redis Cluster routing for one worker: the slot map, a connection per node,
// MOVED and ASK followed within the command's deadline.
#include "proxy/shared_cache/cluster.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>
#include <utility>

#include "spdlog/spdlog.h"

namespace airbag::shared_cache {
namespace {

// A numeric IPv4 or IPv6 address, or false (a name would need DNS, which
// never runs on a worker's loop).
bool numericAddress(const NodeAddress& node, sockaddr_storage* out, socklen_t* len) {
  std::memset(out, 0, sizeof(*out));
  auto* v4 = reinterpret_cast<sockaddr_in*>(out);
  if (inet_pton(AF_INET, node.host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(node.port));
    *len = sizeof(sockaddr_in);
    return true;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(out);
  if (inet_pton(AF_INET6, node.host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(node.port));
    *len = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

}  // namespace

struct Cluster::Request {
  std::vector<std::string> args;  // kept to be sent again after a redirection
  absl::Time deadline;
  int redirects = 0;
  Callback done;
};

Cluster::Cluster(event_base* base, Dispatcher& dispatcher, std::shared_ptr<const Tier> tier,
                 std::shared_ptr<spdlog::logger> logger)
    : base_(base),
      dispatcher_(dispatcher),
      tier_(std::move(tier)),
      logger_(std::move(logger)),
      seed_{tier_->settings().host, tier_->settings().port} {}

// Node clients drop their pending callbacks, so none reaches a freed Cluster.
Cluster::~Cluster() = default;

Client* Cluster::clientFor(const NodeAddress& node) {
  std::string name = node.name();
  auto it = nodes_.find(name);
  if (it != nodes_.end()) return it->second.client.get();
  // rediss://: the seed's TLS context and name (tls_name) are kept. Nodes are
  // announced by IP, and a cluster's certificate names the cluster (one SAN
  // list or a wildcard), so every node is checked against the name the seed
  // is: the URL's host or tls.sni. The shared tier resumes no TLS sessions,
  // so no node is offered another's.
  TierSettings s = tier_->settings();
  s.cluster = false;  // a node's client talks to that node only
  if (!(node == seed_)) {
    if (!numericAddress(node, &s.address, &s.address_len)) {
      if (logger_)
        logger_->warn(
            "shared cache: Redis Cluster node {} is not announced by IP address; "
            "its slots are a miss (set cluster-preferred-endpoint-type ip)",
            name);
      return nullptr;
    }
    s.host = node.host;
    s.port = node.port;
    s.url = tier_->settings().url + " (node " + name + ")";
  }
  Node n;
  n.tier = std::make_shared<const Tier>(std::move(s), tier_);
  n.client = std::make_unique<Client>(base_, dispatcher_, n.tier, logger_);
  Client* c = n.client.get();
  nodes_.emplace(std::move(name), std::move(n));
  return c;
}

bool Cluster::command(absl::Span<const std::string_view> args, absl::Duration timeout,
                      Callback done) {
  absl::Time now = dispatcher_.now();
  if (!map_.covered()) refresh(now);
  auto req = std::make_shared<Request>();
  req->args.assign(args.begin(), args.end());
  req->deadline = now + timeout;
  req->done = std::move(done);
  const NodeAddress* node = nullptr;
  if (std::optional<std::string_view> key = commandKey(args)) node = map_.nodeFor(hashSlot(*key));
  // Before the first map (or for a slot no one serves), the seed answers or
  // redirects.
  return send(req, node ? *node : seed_, false, now);
}

bool Cluster::send(const std::shared_ptr<Request>& req, const NodeAddress& node, bool asking,
                   absl::Time now) {
  absl::Duration left = req->deadline - now;
  if (left <= absl::ZeroDuration()) return false;
  Client* c = clientFor(node);
  if (!c) return false;
  std::vector<std::string_view> args(req->args.begin(), req->args.end());
  // ASKING and the command go out back to back on one connection, so Redis
  // reads them in that order; ASKING's own reply needs no look.
  if (asking && !c->command({"ASKING"}, left, [](Result&&) {})) return false;
  return c->command(args, left,
                    [this, req, node](Result&& r) { onReply(req, node, std::move(r)); });
}

void Cluster::onReply(const std::shared_ptr<Request>& req, const NodeAddress& node,
                      Result&& result) {
  absl::Time now = dispatcher_.now();
  if (result.kind == Result::Kind::kReply && result.reply.isError()) {
    if (std::optional<Redirect> to = parseRedirect(result.reply.str)) {
      NodeAddress target{to->host.empty() ? node.host : to->host, to->port};
      if (!to->ask) {
        map_.assign(to->slot, target);
        refresh(now);  // one slot moved: others may have too
      }
      if (req->redirects < kMaxRedirects && now < req->deadline) {
        ++req->redirects;
        if (send(req, target, to->ask, now)) return;
        result = Result{Result::Kind::kFailed, {}};
      }
      // Too many redirections or no time left: the caller sees a miss.
    }
  } else if (result.kind == Result::Kind::kFailed) {
    refresh(now);  // the node may be gone, its slots served elsewhere
  }
  Callback done = std::move(req->done);
  if (done) done(std::move(result));
}

void Cluster::refresh(absl::Time now) {
  if (refreshing_ || now - last_refresh_ < kRefreshEvery) return;
  // Turn by turn: the seed, then each master the map knows.
  std::vector<NodeAddress> ask = {seed_};
  for (const NodeAddress& n : map_.nodes())
    if (!(n == seed_)) ask.push_back(n);
  NodeAddress node = ask[refresh_turn_++ % ask.size()];
  Client* c = clientFor(node);
  if (!c) return;
  last_refresh_ = now;
  refreshing_ = c->command({"CLUSTER", "SLOTS"}, tier_->settings().connect_timeout,
                           [this, node](Result&& r) { onSlots(node, std::move(r)); });
}

void Cluster::onSlots(const NodeAddress& asked, Result&& result) {
  refreshing_ = false;
  absl::StatusOr<SlotMap> map =
      result.kind == Result::Kind::kReply
          ? parseClusterSlots(result.reply, asked.host)
          : absl::UnavailableError(result.kind == Result::Kind::kTimeout ? "no answer in time"
                                                                         : "connection failed");
  if (!map.ok()) {
    if (!logged_refresh_failure_ && logger_)
      logger_->warn("shared cache: Redis Cluster slot map from {}: {}", asked.name(),
                    std::string(map.status().message()));
    logged_refresh_failure_ = true;
    return;
  }
  logged_refresh_failure_ = false;
  map_ = *std::move(map);
  if (map_.nodes().size() != logged_masters_ && logger_) {
    logger_->info("shared cache: Redis Cluster at {}: {} masters serve {} of 16384 slots",
                  tier_->settings().url, map_.nodes().size(), map_.covered());
    logged_masters_ = map_.nodes().size();
  }
}

}  // namespace airbag::shared_cache
