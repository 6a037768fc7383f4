// The shared tier's purge: a SCAN cursor loop per node and pattern, each batch
// UNLINKed before the next SCAN, stopped by the key or time bound.
#include "proxy/shared_cache/purge.h"

#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "proxy/shared_cache/cluster.h"
#include "proxy/shared_cache/entry_codec.h"

namespace airbag::shared_cache {
namespace {

class ClientTransport final : public PurgeTransport {
 public:
  explicit ClientTransport(Client& client) : client_(client) {}
  absl::Time now() const override { return client_.now(); }
  std::string name(const NodeAddress* node) const override {
    if (node == nullptr) return absl::StrCat("Redis at ", client_.tier().settings().url);
    return absl::StrCat("Redis Cluster node ", node->name());
  }
  std::string seedHost() const override { return client_.tier().settings().host; }
  bool send(const NodeAddress* node, absl::Span<const std::string_view> args,
            absl::Duration timeout, Callback done) override {
    if (node == nullptr || client_.cluster() == nullptr)
      return client_.command(args, timeout, std::move(done));
    Client* c = client_.cluster()->nodeClient(*node);
    return c != nullptr && c->command(args, timeout, std::move(done));
  }

 private:
  Client& client_;
};

class Purge : public std::enable_shared_from_this<Purge> {
 public:
  Purge(std::shared_ptr<PurgeTransport> t, std::vector<std::string> patterns, bool cluster,
        const PurgeLimits& limits, std::function<void(PurgeResult)> done)
      : t_(std::move(t)),
        patterns_(std::move(patterns)),
        cluster_(cluster),
        limits_(limits),
        done_(std::move(done)),
        deadline_(t_->now() + limits.time) {}

  void start() {
    if (!cluster_) {
      nodes_.push_back(std::nullopt);
      scanNext();
      return;
    }
    auto self = shared_from_this();
    if (!t_->send(nullptr, {"CLUSTER", "SLOTS"}, timeout(),
                  [self](Result&& r) { self->onSlots(std::move(r)); }))
      notAsked(nullptr);
  }

 private:
  const NodeAddress* node() const { return nodes_[node_] ? &*nodes_[node_] : nullptr; }
  absl::Duration timeout() const {
    return std::clamp(deadline_ - t_->now(), absl::Milliseconds(1), limits_.command_timeout);
  }

  void onSlots(Result&& r) {
    if (!r.ok()) return finish(PurgeStop::kError, describe(nullptr, r, "CLUSTER SLOTS"));
    absl::StatusOr<SlotMap> map = parseClusterSlots(r.reply, t_->seedHost());
    if (!map.ok())
      return finish(PurgeStop::kError, absl::StrCat(t_->name(nullptr), ": CLUSTER SLOTS: ",
                                          map.status().message()));
    for (const NodeAddress& n : map->nodes()) nodes_.push_back(n);
    scanNext();
  }

  void scanNext() {
    if (t_->now() >= deadline_) return finish(PurgeStop::kTime, "");
    if (result_.purged >= limits_.max_keys) return finish(PurgeStop::kMaxKeys, "");
    const std::string count = std::to_string(limits_.scan_count);
    auto self = shared_from_this();
    if (!t_->send(node(), {"SCAN", cursor_, "MATCH", patterns_[pattern_], "COUNT", count},
                  timeout(), [self](Result&& r) { self->onScan(std::move(r)); }))
      notAsked(node());
  }

  void onScan(Result&& r) {
    if (!r.ok()) return finish(PurgeStop::kError, describe(node(), r, "SCAN"));
    const Reply& reply = r.reply;
    if (reply.type != Reply::Type::kArray || reply.elements.size() != 2 ||
        reply.elements[0].type != Reply::Type::kString ||
        reply.elements[1].type != Reply::Type::kArray)
      return finish(PurgeStop::kError, absl::StrCat(t_->name(node()), ": SCAN: not a [cursor, keys] reply"));
    cursor_ = reply.elements[0].str;
    std::vector<std::string> keys;
    for (const Reply& k : reply.elements[1].elements)
      if (k.type == Reply::Type::kString) keys.push_back(k.str);
    const uint64_t room = limits_.max_keys - result_.purged;
    if (keys.size() > room) {
      keys.resize(room);
      cut_ = true;
    }
    if (keys.empty()) return advance();
    unlink(std::move(keys));
  }

  // One UNLINK for the batch; on a cluster one per hash slot, since a
  // command's keys must share a slot there.
  void unlink(std::vector<std::string> keys) {
    std::map<int, std::vector<std::string_view>> groups;
    for (const std::string& k : keys) groups[cluster_ ? hashSlot(k) : 0].push_back(k);
    waiting_ = groups.size();
    auto self = shared_from_this();
    for (auto& [slot, group] : groups) {
      group.insert(group.begin(), "UNLINK");
      if (!t_->send(node(), group, timeout(),
                    [self](Result&& r) { self->onUnlink(std::move(r)); })) {
        if (error_.empty()) error_ = notAskedError(node());
        --waiting_;
      }
    }
    if (waiting_ == 0) afterUnlink();
  }

  void onUnlink(Result&& r) {
    if (r.ok() && r.reply.type == Reply::Type::kInteger)
      result_.purged += static_cast<uint64_t>(std::max<int64_t>(0, r.reply.integer));
    else if (error_.empty())
      error_ = describe(node(), r, "UNLINK");
    if (--waiting_ == 0) afterUnlink();
  }

  void afterUnlink() {
    if (!error_.empty()) return finish(PurgeStop::kError, error_);
    if (cut_) return finish(PurgeStop::kMaxKeys, "");
    advance();
  }

  // After a batch: the next SCAN of this pattern, or the next pattern, or
  // the next node, or done.
  void advance() {
    if (cursor_ == "0") {
      if (++pattern_ == patterns_.size()) {
        pattern_ = 0;
        ++node_;
      }
      if (node_ == nodes_.size()) {
        result_.complete = true;
        return finish(PurgeStop::kNone, "");
      }
    }
    scanNext();
  }

  static constexpr std::string_view kNotAsked =
      "its breaker is open after repeated failures, or too many commands wait";

  std::string notAskedError(const NodeAddress* n) const {
    return absl::StrCat(t_->name(n), ": not asked (", std::string(kNotAsked), ")");
  }
  void notAsked(const NodeAddress* n) { finish(PurgeStop::kError, notAskedError(n)); }
  std::string describe(const NodeAddress* n, const Result& r, std::string_view what) const {
    switch (r.kind) {
      case Result::Kind::kTimeout:
        return absl::StrCat(t_->name(n), ": no answer to ", std::string(what), " in time");
      case Result::Kind::kFailed:
        return absl::StrCat(t_->name(n), ": connection failed");
      case Result::Kind::kReply:
        break;
    }
    return absl::StrCat(t_->name(n), ": ", std::string(what), ": ", r.reply.str);
  }

  void finish(PurgeStop stopped_by, std::string error) {
    if (!done_) return;
    result_.stopped_by = stopped_by;
    result_.error = std::move(error);
    result_.nodes = node_;
    auto done = std::move(done_);
    done_ = nullptr;
    done(std::move(result_));
  }

  std::shared_ptr<PurgeTransport> t_;
  const std::vector<std::string> patterns_;
  const bool cluster_;
  const PurgeLimits limits_;
  std::function<void(PurgeResult)> done_;
  const absl::Time deadline_;
  std::vector<std::optional<NodeAddress>> nodes_;  // nullopt: the single Redis
  size_t node_ = 0;
  size_t pattern_ = 0;
  std::string cursor_ = "0";
  size_t waiting_ = 0;              // UNLINK replies still to come
  bool cut_ = false;                // the batch was cut to stay within max_keys
  std::string error_;
  PurgeResult result_;
};

}  // namespace

std::string_view purgeStopName(PurgeStop stop) {
  switch (stop) {
    case PurgeStop::kNone:
      return "";
    case PurgeStop::kMaxKeys:
      return "max_keys";
    case PurgeStop::kTime:
      return "time";
    case PurgeStop::kError:
      return "error";
  }
  return "";
}

std::unique_ptr<PurgeTransport> clientTransport(Client& client) {
  return std::make_unique<ClientTransport>(client);
}

void purgeShared(std::shared_ptr<PurgeTransport> transport, std::vector<std::string> patterns,
                 bool cluster, const PurgeLimits& limits,
                 std::function<void(PurgeResult)> done) {
  if (patterns.empty()) {
    PurgeResult r;
    r.complete = true;
    done(std::move(r));
    return;
  }
  auto p = std::make_shared<Purge>(std::move(transport), std::move(patterns), cluster, limits,
                                   std::move(done));
  p->start();
}

}  // namespace airbag::shared_cache
