// Redis Cluster behind one worker's shared-tier client (DESIGN.md §8
// cache.shared.cluster): learns the slot map with CLUSTER SLOTS, sends each
// command to the master of its key's hash slot over one connection per node
// (each a plain Client on the worker's loop; over rediss:// each speaks TLS
// and is verified against the seed's name), and follows MOVED (the map is
// corrected, the command resent) and ASK (ASKING, then the command, on the
// named node; the map is kept). A command is redirected at most
// kMaxRedirects times and never past its own deadline: a confused cluster is
// a miss, not a loop. Worker thread only.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/types/span.h"
#include "proxy/shared_cache/client.h"
#include "proxy/shared_cache/slot_map.h"

namespace airbag::shared_cache {

inline constexpr int kMaxRedirects = 5;
inline constexpr absl::Duration kRefreshEvery = absl::Milliseconds(200);

class Cluster {
 public:
  // `base`, `dispatcher` and `tier` (the seed node's settings) must outlive it.
  Cluster(event_base* base, Dispatcher& dispatcher, std::shared_ptr<const Tier> tier,
          std::shared_ptr<spdlog::logger> logger);
  ~Cluster();
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  // Client::command's contract: `done` once, from the loop, unless false is
  // returned (breaker open, too much waiting, or no node to ask).
  bool command(absl::Span<const std::string_view> args, absl::Duration timeout, Callback done);

  // Asks a node for the slot map again, unless a refresh is running or one
  // started less than kRefreshEvery ago. Each refresh asks the next node
  // known, so a dead seed does not leave the map stale.
  void refresh(absl::Time now);
  const SlotMap& map() const { return map_; }
  // The connection to `node` itself, bypassing slot routing (a purge scans
  // each master); null when its address is not a numeric IP.
  Client* nodeClient(const NodeAddress& node) { return clientFor(node); }

 private:
  struct Request;
  struct Node {
    std::shared_ptr<const Tier> tier;
    std::unique_ptr<Client> client;
  };

  bool send(const std::shared_ptr<Request>& req, const NodeAddress& node, bool asking,
            absl::Time now);
  void onReply(const std::shared_ptr<Request>& req, const NodeAddress& node, Result&& result);
  void onSlots(const NodeAddress& asked, Result&& result);
  // The connection to `node`, made on first use; null when its address is
  // not a numeric IP (nothing here may block on DNS).
  Client* clientFor(const NodeAddress& node);

  event_base* base_;
  Dispatcher& dispatcher_;
  std::shared_ptr<const Tier> tier_;
  std::shared_ptr<spdlog::logger> logger_;
  NodeAddress seed_;
  SlotMap map_;
  std::unordered_map<std::string, Node> nodes_;  // by NodeAddress::name()
  bool refreshing_ = false;
  absl::Time last_refresh_ = absl::InfinitePast();
  size_t refresh_turn_ = 0;    // which known node the next refresh asks
  size_t logged_masters_ = 0;  // the map's size last logged
  bool logged_refresh_failure_ = false;
};

}  // namespace airbag::shared_cache
