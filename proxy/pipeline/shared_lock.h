// The fill lock of the shared cache tier (cache.shared.coalesce) as a hold:
// the request that took `SET <key> <token> NX PX <coalesce_wait>` owns it and
// gives it back when it ends by any path, after its answer was written.
#pragma once

#include <memory>
#include <string>
#include <utility>

namespace airbag::shared_cache {
class Client;
}

namespace airbag::pipeline {

namespace hold_internal {
// Deletes the lock only while it still holds this request's token: a holder
// slower than the lock's expiry must not delete a lock another pod has taken
// since. Redis has no compare-and-delete, so a two-line script does it. Sent
// after the answer's SET on the same connection, so Redis sees it second.
struct SharedUnlock {
  std::string key;
  std::string token;
  void operator()(shared_cache::Client* c) const;  // exchange_coalesce.cc
};
}  // namespace hold_internal

// The duty of the pod that took the fleet-wide fill lock to give it back.
// `client` must outlive the lock (the worker frees its connections first).
class SharedFillLock {
 public:
  SharedFillLock() = default;
  SharedFillLock(shared_cache::Client* client, std::string key, std::string token)
      : p_(client, {std::move(key), std::move(token)}) {}
  bool held() const { return p_ != nullptr; }
  void reset() { p_.reset(); }

 private:
  std::unique_ptr<shared_cache::Client, hold_internal::SharedUnlock> p_;
};

}  // namespace airbag::pipeline
