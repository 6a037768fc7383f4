// Answers given later: POST /cache/purge, whose shared-tier half runs on
// another loop, and the mailbox that carries such answers back to the admin
// thread.
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <memory>
#include <mutex>

#include "absl/synchronization/mutex.h"
#include "proxy/admin/admin_server.h"

namespace airbag::admin {

using Json = nlohmann::json;

void AdminServer::Mailbox::post(uint64_t id, AdminResponse resp) {
  absl::MutexLock l(&mu_);
  if (closed_) return;
  answers_.emplace_back(id, std::move(resp));
  wakeLocked();
}

void AdminServer::Mailbox::wake() {
  absl::MutexLock l(&mu_);
  if (!closed_) wakeLocked();
}

std::vector<std::pair<uint64_t, AdminResponse>> AdminServer::Mailbox::take() {
  absl::MutexLock l(&mu_);
  return std::exchange(answers_, {});
}

void AdminServer::Mailbox::close() {
  absl::MutexLock l(&mu_);
  closed_ = true;
  answers_.clear();
}

void AdminServer::Mailbox::wakeLocked() {
  char byte = 1;
  ssize_t n;
  do {
    n = ::write(wake_fd_, &byte, 1);
  } while (n < 0 && errno == EINTR);
  // A full pipe (EAGAIN) already holds a wake-up the loop has yet to read.
}

AdminResponse AdminRouter::handle(const AdminRequest& request) const {
  // A std::condition_variable, not absl::Mutex::Await: the wait hands the lock over inside the
  // library, where ThreadSanitizer's annotations of absl::Mutex (tests/tsan/) cannot see it.
  struct Slot {
    std::mutex mu;
    std::condition_variable answered;
    std::optional<AdminResponse> resp;  // guarded by mu
  };
  auto slot = std::make_shared<Slot>();
  std::variant<AdminResponse, Deferred> handled = handleAsync(request, [slot](AdminResponse r) {
    std::lock_guard<std::mutex> l(slot->mu);
    if (slot->resp) return;
    slot->resp = std::move(r);
    slot->answered.notify_all();
  });
  if (AdminResponse* now = std::get_if<AdminResponse>(&handled)) return std::move(*now);
  Deferred& deferred = std::get<Deferred>(handled);
  std::unique_lock<std::mutex> l(slot->mu);
  if (!slot->answered.wait_for(l, absl::ToChronoNanoseconds(deferred.timeout),
                               [&slot] { return slot->resp.has_value(); }))
    return std::move(deferred.on_timeout);
  return std::move(*slot->resp);
}

std::variant<AdminResponse, Deferred> AdminRouter::sharedPurge(
    std::optional<std::string_view> route, const Respond& later) const {
  Json local = {{"purged", route ? Json(*route) : Json("all")}};
  // The shared tier's answer joins the local one; a failed shared purge is
  // 502 (Redis, behind us, failed), one that never answered 504.
  auto answer = [local](Json shared) {
    const int status = shared.contains("error") ? 502 : 200;
    Json body = local;
    body["shared"] = std::move(shared);
    return jsonResponse(status, body);
  };
  if (!hooks_.shared_purge ||
      !hooks_.shared_purge(route, [later, answer](Json shared) { later(answer(std::move(shared))); }))
    return jsonResponse(200, local);
  Json timed_out = {{"complete", false},
                    {"error", "no answer from the shared tier within " +
                                  absl::FormatDuration(hooks_.shared_purge_timeout)}};
  AdminResponse on_timeout = answer(std::move(timed_out));
  on_timeout.status = 504;
  return Deferred{hooks_.shared_purge_timeout, std::move(on_timeout)};
}

}  // namespace airbag::admin
