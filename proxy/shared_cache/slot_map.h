// Redis Cluster's routing facts as values (DESIGN.md §8 cache.shared.cluster):
// which node serves which hash slot, read from a CLUSTER SLOTS reply, and
// which argument of a command is the key that picks the slot. Pure: no I/O.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "proxy/shared_cache/entry_codec.h"
#include "proxy/shared_cache/resp.h"

namespace airbag::shared_cache {

// One master's address as the cluster announces it.
struct NodeAddress {
  std::string host;
  int port = 0;
  bool operator==(const NodeAddress& o) const { return host == o.host && port == o.port; }
  std::string name() const;  // "host:port", brackets around an IPv6 host
};

// A slot → master table. Slots no range covered map to nothing.
class SlotMap {
 public:
  SlotMap() { owner_.fill(-1); }

  // The master serving `slot` (0..16383), or null when none does.
  const NodeAddress* nodeFor(int slot) const;
  // Points `slot` at `node` (after a MOVED), adding the node if it is new.
  void assign(int slot, const NodeAddress& node);
  // Every master that serves, or once served, a slot; each once.
  const std::vector<NodeAddress>& nodes() const { return nodes_; }
  // How many slots have a master.
  int covered() const;

 private:
  friend absl::StatusOr<SlotMap> parseClusterSlots(const Reply& reply, std::string_view asked_host);
  int indexOf(const NodeAddress& node);
  std::vector<NodeAddress> nodes_;
  std::array<int16_t, kClusterSlots> owner_;
};

// The map in a CLUSTER SLOTS reply: an array of [start, end, [host, port,
// ...] (the master), replicas...]. An empty host, or "?", becomes
// `asked_host` (the node that answered: Redis 7 says so when it does not know
// its own address). Errors say what is malformed: an error reply, a reply
// that is not an array, a range out of 0..16383 or reversed, a master without
// a host string and a port in 1..65535, or no slot covered at all.
absl::StatusOr<SlotMap> parseClusterSlots(const Reply& reply, std::string_view asked_host);

// The key that decides where `args` goes: the first argument after the
// command name for the single-key commands airbag sends (GET, SET, DEL,
// UNLINK, PEXPIRE, ...), the first key of EVAL/EVALSHA/FCALL (after the
// script and the key count). Nullopt for a command without a key (PING,
// SCAN, ...): any node will do.
std::optional<std::string_view> commandKey(absl::Span<const std::string_view> args);

}  // namespace airbag::shared_cache
