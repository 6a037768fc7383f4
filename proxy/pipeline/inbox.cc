// A worker's inbox; see inbox.h.
#include "proxy/pipeline/inbox.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>

namespace airbag::pipeline {

Inbox::Inbox() : fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

Inbox::~Inbox() {
  if (fd_ >= 0) ::close(fd_);
}

void Inbox::post(InboxMessage m) {
  absl::MutexLock l(&mu_);
  queue_.push_back(m);
  if (signalled_) return;  // one wake-up covers everything queued before take()
  signalled_ = true;
  uint64_t one = 1;
  (void)!::write(fd_, &one, sizeof(one));
}

void Inbox::take(std::vector<InboxMessage>* out) {
  out->clear();
  uint64_t n;
  (void)!::read(fd_, &n, sizeof(n));
  absl::MutexLock l(&mu_);
  out->swap(queue_);
  signalled_ = false;
}

}  // namespace airbag::pipeline
