// The process's one response cache (DESIGN.md §1 cache lookup, coalescing,
// stale-while-revalidate, stale-if-error): sharded, LRU by bytes under a global cap.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "policy/cache_control.h"

namespace airbag::policy {

// One stored answer. Immutable once handed to the store; shared as
// std::shared_ptr<const CacheEntry> so a reader never copies the body and an
// eviction never frees what a reader still holds.
struct CacheEntry {
  std::string key;  // the full cache key (DESIGN.md §3 `cache.key`)
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool stream = false;  // replay as a stream (the answer was one)
  absl::Time stored_at;
  Freshness freshness;
  std::string route;  // for purge and per-route stats
};

// Thread-safe: every method may be called from any worker thread. The store is
// split into kShards shards by key hash, each with its own mutex held only for
// a map probe and a few list splices; callbacks never run under a lock.
class CacheStore {
 public:
  static constexpr size_t kShards = 16;
  // Bytes counted per entry beyond its strings: the entry, its list node, map
  // slot and control block.
  static constexpr uint64_t kEntryOverhead = 256;
  // Bytes counted per header beyond its name and value (the two strings).
  static constexpr uint64_t kHeaderOverhead = 2 * sizeof(std::string);

  // Hashes a key. Only picks the shard and the bucket: keys are always compared
  // in full, so a collision never serves another request's answer.
  using KeyHash = uint64_t (*)(std::string_view key);
  static uint64_t defaultHash(std::string_view key);

  // `max_bytes`: the cap on the bytes of all entries (GlobalCacheConfig).
  explicit CacheStore(uint64_t max_bytes, KeyHash hash = &CacheStore::defaultHash);
  CacheStore(const CacheStore&) = delete;
  CacheStore& operator=(const CacheStore&) = delete;
  // Precondition: no fill has followers left (every leader completed).
  ~CacheStore() = default;

  // The bytes an entry is charged: key, route, headers, body and the overheads.
  static uint64_t entryBytes(const CacheEntry& entry);

  enum class Lookup {
    kFresh,         // age < ttl
    kStale,         // within stale_while_revalidate: serve it, maybe refresh
    kStaleIfError,  // past that, within stale_if_error: only if the upstream fails
    kMiss,          // absent, or too old for anything (then dropped)
  };
  struct LookupResult {
    Lookup kind = Lookup::kMiss;
    std::shared_ptr<const CacheEntry> entry;  // null for kMiss
    // kStale only: true for exactly one caller per key, who should start a
    // background refresh and end it with insert() or revalidationDone().
    bool revalidate = false;
  };
  // Classifies the entry for `key` by its age at `now` (a `now` before
  // stored_at counts as age 0) and marks it most recently used. A hit
  // allocates nothing beyond the shared_ptr copy.
  LookupResult lookup(std::string_view key, absl::Time now);

  // Stores `entry` under entry->key, replacing any entry for that key, then
  // evicts least recently used entries until the total is under the cap: from
  // this entry's shard first, then the others in turn. Returns false, storing
  // nothing and keeping any existing entry, if entry is null, its
  // freshness.store is false, or entryBytes() exceeds `max_entry_bytes` (the
  // route's) or the whole cap. Either way any refresh of the key is over.
  bool insert(std::shared_ptr<const CacheEntry> entry, uint64_t max_entry_bytes);

  // A background refresh failed or was abandoned: a later kStale lookup may
  // start another. No-op if the key is not stored.
  void revalidationDone(std::string_view key);

  // A caller waiting on another's upstream call for the same key.
  class FillWaiter {
   public:
    // Called once, on the leader's thread and with the key's shard locked,
    // with the leader's answer, or null when the leader failed or got an
    // uncacheable answer (the follower then goes upstream itself). Must be
    // quick and must not call back into the store: post a wake-up and return.
    // Because the lock is held, once leaveFill() has returned no call to the
    // waiter is running, and it may be destroyed.
    virtual void onFilled(std::shared_ptr<const CacheEntry> entry) = 0;

   protected:
    ~FillWaiter() = default;
  };
  enum class Fill { kLeader, kFollower };
  // Coalesces concurrent misses of one key. kLeader: the caller fetches and
  // must call completeFill(key, ...) exactly once, whatever happens. kFollower:
  // `w` is registered and gets onFilled exactly once unless leaveFill(key, w)
  // returns true first; the caller runs its own deadline timer.
  Fill joinFill(std::string_view key, FillWaiter* w);
  // The follower `w` gives up (deadline, client gone). True: removed, no
  // onFilled will come. False: onFilled has already run.
  bool leaveFill(std::string_view key, FillWaiter* w);
  // The leader is done (`entry` may be null). Ends the fill (the next miss
  // leads a new one) and notifies every follower on this thread, under the
  // shard's lock. Does not store `entry`: insert() it first.
  void completeFill(std::string_view key, std::shared_ptr<const CacheEntry> entry);

  // Drop entries (readers keep theirs); return how many were dropped.
  size_t purgeRoute(std::string_view route);
  size_t purgeAll();

  // Takes a new cap on hot reload; a smaller one is enforced at the next insert.
  void setMaxBytes(uint64_t max_bytes) { max_bytes_.store(max_bytes, std::memory_order_relaxed); }
  uint64_t maxBytes() const { return max_bytes_.load(std::memory_order_relaxed); }

  struct Stats {
    uint64_t bytes = 0;
    uint64_t entries = 0;
    uint64_t evictions = 0;  // entries evicted for the cap, since construction
  };
  Stats stats() const;
  struct RouteStats {
    uint64_t entries = 0;
    uint64_t bytes = 0;
  };
  RouteStats routeStats(std::string_view route) const;

 private:
  // A key with its hash; the text points into storage that outlives the map slot.
  struct Key {
    std::string_view text;
    uint64_t hash = 0;
  };
  struct KeyHasher {
    size_t operator()(const Key& k) const { return static_cast<size_t>(k.hash); }
  };
  struct KeyEq {
    bool operator()(const Key& a, const Key& b) const {
      return a.hash == b.hash && a.text == b.text;
    }
  };
  struct Slot {
    std::shared_ptr<const CacheEntry> entry;
    uint64_t hash = 0;
    uint64_t bytes = 0;
    bool revalidating = false;
  };
  using Lru = std::list<Slot>;  // most recently used first
  struct FillState {
    std::string key;  // owns the text of the fills map's Key
    std::vector<FillWaiter*> followers;
  };
  // Cache-line aligned so neighbouring shards' mutexes do not share a line.
  struct alignas(64) Shard {
    mutable absl::Mutex mu;
    Lru lru ABSL_GUARDED_BY(mu);
    // Key text points into the entry held by the slot.
    absl::flat_hash_map<Key, Lru::iterator, KeyHasher, KeyEq> index ABSL_GUARDED_BY(mu);
    absl::flat_hash_map<Key, std::unique_ptr<FillState>, KeyHasher, KeyEq> fills
        ABSL_GUARDED_BY(mu);
    absl::flat_hash_map<std::string, RouteStats> routes ABSL_GUARDED_BY(mu);
  };
  using Dropped = std::vector<std::shared_ptr<const CacheEntry>>;

  Shard& shardFor(uint64_t hash);
  // Unlinks one slot, moving its entry to `dropped` so the last reference (and
  // the body) is freed after the lock is released.
  void eraseLocked(Shard& shard, Lru::iterator it, Dropped& dropped)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);
  bool overCap() const;
  // Evicts from the back of `shard` while over the cap, keeping at least `keep` entries.
  void evictLocked(Shard& shard, size_t keep, Dropped& dropped)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);

  const KeyHash hash_;
  std::atomic<uint64_t> max_bytes_;
  std::atomic<uint64_t> bytes_{0};
  std::atomic<uint64_t> entries_{0};
  std::atomic<uint64_t> evictions_{0};
  std::atomic<size_t> next_victim_shard_{0};  // round-robin start for evictions
  std::array<Shard, kShards> shards_;
};

}  // namespace airbag::policy
