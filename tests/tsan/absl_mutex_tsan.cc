// ThreadSanitizer support, linked only into the AIRBAG_TSAN build: tells TSan
// that absl::Mutex orders memory.
//
// Debian's abseil is a shared library built without -fsanitize=thread, so TSan
// cannot see absl::Mutex's hand-offs (its atomics and futex waits live in the
// uninstrumented library) and would report every field guarded by an
// absl::Mutex as a data race. This file defines the Mutex entry points the
// code base calls, in the inline namespace Debian's abseil uses (absl::debian3;
// see ABSL_OPTION_INLINE_NAMESPACE_NAME in absl/base/options.h). Symbols of the
// executable come first in the dynamic lookup, so every call (including calls
// from inside the library) lands here; each one forwards to the real function,
// found once with dlsym(RTLD_NEXT), and adds the acquire/release annotation
// TSan needs. Release happens before the real unlock, acquire after the real
// lock, so the annotated order is the real one.
//
// Not covered: CondVar::Wait, Await and the *LockWhen* family, which hand the
// mutex over inside the library. Nothing in airbag uses them; using one would
// bring back false reports, not hide real ones. Should abseil's namespace
// change, the definitions below stop matching, the library's own functions are
// used unannotated, and TSan's false reports make that loud.
#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <type_traits>

#include "absl/base/options.h"
#include "absl/synchronization/mutex.h"

// The mangled names below spell absl::debian3; fail the build, not the run, if that changes.
static_assert(std::is_same_v<absl::Mutex, absl::debian3::Mutex>,
              "tests/tsan/absl_mutex_tsan.cc names abseil's inline namespace debian3");

extern "C" {
void __tsan_acquire(void* addr);
void __tsan_release(void* addr);
}

namespace {

using MutexFn = void (*)(absl::Mutex*);
using MutexTryFn = bool (*)(absl::Mutex*);

// The real function named by its mangled `symbol`, looked up past this executable.
template <typename Fn>
Fn real(const char* symbol) {
  void* f = dlsym(RTLD_NEXT, symbol);
  if (f == nullptr) {
    std::fprintf(stderr, "absl_mutex_tsan: %s not found: %s\n", symbol, dlerror());
    std::abort();
  }
  return reinterpret_cast<Fn>(f);
}

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

void Mutex::Lock() {
  static const MutexFn f = real<MutexFn>("_ZN4absl7debian35Mutex4LockEv");
  f(this);
  __tsan_acquire(this);
}

void Mutex::Unlock() {
  static const MutexFn f = real<MutexFn>("_ZN4absl7debian35Mutex6UnlockEv");
  __tsan_release(this);
  f(this);
}

bool Mutex::TryLock() {
  static const MutexTryFn f = real<MutexTryFn>("_ZN4absl7debian35Mutex7TryLockEv");
  bool locked = f(this);
  if (locked) __tsan_acquire(this);
  return locked;
}

void Mutex::ReaderLock() {
  static const MutexFn f = real<MutexFn>("_ZN4absl7debian35Mutex10ReaderLockEv");
  f(this);
  __tsan_acquire(this);
}

void Mutex::ReaderUnlock() {
  static const MutexFn f = real<MutexFn>("_ZN4absl7debian35Mutex12ReaderUnlockEv");
  __tsan_release(this);
  f(this);
}

bool Mutex::ReaderTryLock() {
  static const MutexTryFn f = real<MutexTryFn>("_ZN4absl7debian35Mutex13ReaderTryLockEv");
  bool locked = f(this);
  if (locked) __tsan_acquire(this);
  return locked;
}

ABSL_NAMESPACE_END
}  // namespace absl
