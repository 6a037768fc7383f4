// Purging routes from the shared tier (POST /cache/purge): SCAN with MATCH on
// each route's key pattern, UNLINK of every batch found, on the one Redis or on
// every master of a cluster, within a bound on keys and time. The driver runs
// on one loop and talks through a small transport, so tests drive it with a
// fake and the proxy with a real client. Loop thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "absl/types/span.h"
#include "proxy/shared_cache/client.h"
#include "proxy/shared_cache/slot_map.h"

namespace airbag::shared_cache {

struct PurgeLimits {
  size_t scan_count = 1000;      // SCAN's COUNT hint: keys looked at per call
  uint64_t max_keys = 100000;    // stop once this many keys were unlinked
  absl::Duration time = absl::Seconds(2);           // the whole purge
  absl::Duration command_timeout = absl::Seconds(1);  // one SCAN or UNLINK
};

// Why a purge stopped early.
enum class PurgeStop : uint8_t {
  kNone,     // it did not: it ran to the end
  kMaxKeys,  // PurgeLimits::max_keys keys were unlinked
  kTime,     // PurgeLimits::time ran out
  kError,    // Redis failed or could not be asked
};

// `stop`'s name in the admin's answer and the log: "", "max_keys", "time",
// "error".
std::string_view purgeStopName(PurgeStop stop);

struct PurgeResult {
  uint64_t purged = 0;   // keys UNLINK removed
  bool complete = false;  // every node scanned to the end: nothing of the routes is left
  PurgeStop stopped_by = PurgeStop::kNone;
  std::string error;      // with kError: what failed, naming the node
  size_t nodes = 0;       // Redis nodes scanned to the end (each master of a cluster)
};

// How the driver reaches Redis; the proxy's is over a Client (clientTransport).
class PurgeTransport {
 public:
  virtual ~PurgeTransport() = default;
  virtual absl::Time now() const = 0;
  // `node` (null: the single Redis or the seed) as an error message names it.
  virtual std::string name(const NodeAddress* node) const = 0;
  // The seed's host, for CLUSTER SLOTS entries that leave their host out.
  virtual std::string seedHost() const = 0;
  // Sends `args` to `node` (null: the single Redis, or a cluster's seed), with
  // Client::command's contract: `done` once, from the loop, unless false.
  virtual bool send(const NodeAddress* node, absl::Span<const std::string_view> args,
                    absl::Duration timeout, Callback done) = 0;
};

// A transport over `client` (which must outlive it): a cluster node is
// reached on its own connection, never through slot routing.
std::unique_ptr<PurgeTransport> clientTransport(Client& client);

// Purges every key matching `patterns` (routePattern()s), node by node. With
// `cluster`, the masters come from CLUSTER SLOTS asked of the seed first.
// `done` gets the result exactly once: from the loop, or from inside this
// call when Redis cannot be asked at all (its breaker is open). The driver
// keeps itself alive through its pending commands; if the transport's client
// is destroyed first, `done` is dropped.
void purgeShared(std::shared_ptr<PurgeTransport> transport, std::vector<std::string> patterns,
                 bool cluster, const PurgeLimits& limits,
                 std::function<void(PurgeResult)> done);

}  // namespace airbag::shared_cache
