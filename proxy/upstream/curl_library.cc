// Loading libcurl on first use; see curl_library.h.
//
// The definitions below replace libcurl's own for the linker: the binary does
// not link libcurl, so nothing else defines these names. They are not exported
// (the executable is linked without --export-dynamic), so libcurl's calls to
// its own functions stay inside libcurl.

// curl.h turns curl_easy_setopt and friends into type-checking macros under
// GCC; the functions are defined here, so the plain declarations are wanted.
#define CURL_DISABLE_TYPECHECK 1

#include "proxy/upstream/curl_library.h"

#include <curl/curl.h>
#include <dlfcn.h>

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <type_traits>

#include "absl/strings/str_cat.h"

namespace airbag::upstream {
namespace {

// The functions with a fixed argument list: forwarded as they are.
#define AIRBAG_CURL_FIXED(X)                                                       \
  X(CURLcode, curl_global_init, (long flags), (flags))                            \
  X(CURL*, curl_easy_init, (void), ())                                             \
  X(void, curl_easy_cleanup, (CURL * h), (h))                                      \
  X(void, curl_easy_reset, (CURL * h), (h))                                        \
  X(CURLcode, curl_easy_pause, (CURL * h, int bitmask), (h, bitmask))              \
  X(const char*, curl_easy_strerror, (CURLcode code), (code))                      \
  X(CURLM*, curl_multi_init, (void), ())                                           \
  X(CURLMcode, curl_multi_cleanup, (CURLM * m), (m))                               \
  X(CURLMcode, curl_multi_add_handle, (CURLM * m, CURL * h), (m, h))               \
  X(CURLMcode, curl_multi_remove_handle, (CURLM * m, CURL * h), (m, h))            \
  X(CURLMcode, curl_multi_assign, (CURLM * m, curl_socket_t s, void* p), (m, s, p)) \
  X(CURLMcode, curl_multi_socket_action,                                           \
    (CURLM * m, curl_socket_t s, int ev_bitmask, int* running),                    \
    (m, s, ev_bitmask, running))                                                   \
  X(CURLMcode, curl_multi_timeout, (CURLM * m, long* ms), (m, ms))                 \
  X(CURLMsg*, curl_multi_info_read, (CURLM * m, int* left), (m, left))             \
  X(const char*, curl_multi_strerror, (CURLMcode code), (code))                    \
  X(curl_slist*, curl_slist_append, (curl_slist * list, const char* s), (list, s)) \
  X(void, curl_slist_free_all, (curl_slist * list), (list))                        \
  X(curl_version_info_data*, curl_version_info, (CURLversion v), (v))

// The variadic ones: each takes exactly one argument after the option, whose
// type the option's number range says (CURLOPTTYPE_* in curl.h).
#define AIRBAG_CURL_VARIADIC(X)                         \
  X(CURLcode, curl_easy_setopt, CURL*, CURLoption)      \
  X(CURLMcode, curl_multi_setopt, CURLM*, CURLMoption)  \
  X(CURLcode, curl_easy_getinfo, CURL*, CURLINFO)

struct Api {
#define AIRBAG_FIELD(ret, name, params, args) ret(*name) params = nullptr;
  AIRBAG_CURL_FIXED(AIRBAG_FIELD)
#undef AIRBAG_FIELD
#define AIRBAG_FIELD(ret, name, handle, option) ret (*name)(handle, option, ...) = nullptr;
  AIRBAG_CURL_VARIADIC(AIRBAG_FIELD)
#undef AIRBAG_FIELD
};

Api api;
std::atomic<bool> loaded{false};  // set (release) once `api` is complete

const Api& lib(const char* function) {
  if (!loaded.load(std::memory_order_acquire)) {
    std::fprintf(stderr, "airbag: %s called before libcurl was loaded (loadCurl)\n", function);
    std::abort();
  }
  return api;
}

absl::Status load() {
  // The soname Debian's libcurl4 (OpenSSL flavour) installs.
  constexpr const char* kSoname = "libcurl.so.4";
  void* handle = dlopen(kSoname, RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* why = dlerror();
    return absl::FailedPreconditionError(
        absl::StrCat("https upstreams and health checks need libcurl (Debian package libcurl4): ",
                     why ? why : kSoname));
  }
  std::string missing;
  auto resolve = [&](auto& field, const char* name) {
    field = reinterpret_cast<std::remove_reference_t<decltype(field)>>(dlsym(handle, name));
    if (!field) absl::StrAppend(&missing, missing.empty() ? "" : ", ", name);
  };
#define AIRBAG_RESOLVE(ret, name, ...) resolve(api.name, #name);
  AIRBAG_CURL_FIXED(AIRBAG_RESOLVE)
  AIRBAG_CURL_VARIADIC(AIRBAG_RESOLVE)
#undef AIRBAG_RESOLVE
  if (!missing.empty())
    return absl::FailedPreconditionError(
        absl::StrCat(kSoname, " lacks ", missing, "; airbag needs libcurl 7.74 or newer"));
  if (CURLcode rc = api.curl_global_init(CURL_GLOBAL_DEFAULT); rc != CURLE_OK)
    return absl::InternalError(
        absl::StrCat("libcurl could not initialise: ", api.curl_easy_strerror(rc)));
  loaded.store(true, std::memory_order_release);
  return absl::OkStatus();
}

}  // namespace

absl::Status loadCurl() {
  static std::once_flag once;
  static absl::Status status;
  std::call_once(once, [] { status = load(); });
  return status;
}

}  // namespace airbag::upstream

// The definitions that stand in for libcurl's.
extern "C" {

#define AIRBAG_FORWARD(ret, name, params, args) \
  ret name params { return airbag::upstream::lib(#name).name args; }
AIRBAG_CURL_FIXED(AIRBAG_FORWARD)
#undef AIRBAG_FORWARD

// The signatures are libcurl's own: an enum just before the "...", which clang
// warns may be promoted; libcurl's definitions start their lists the same way.
#if defined(__clang__)
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wvarargs"
#endif
#define AIRBAG_FORWARD(ret, name, handle_type, option_type)                             \
  ret name(handle_type h, option_type option, ...) {                                    \
    const auto& f = airbag::upstream::lib(#name).name;                                  \
    va_list ap;                                                                         \
    va_start(ap, option);                                                               \
    ret rc;                                                                             \
    const long kind = static_cast<long>(option);                                        \
    if (kind < CURLOPTTYPE_OBJECTPOINT)                                                 \
      rc = f(h, option, va_arg(ap, long));                                              \
    else if (kind >= CURLOPTTYPE_OFF_T && kind < CURLOPTTYPE_BLOB)                      \
      rc = f(h, option, va_arg(ap, curl_off_t));                                        \
    else                                                                                \
      rc = f(h, option, va_arg(ap, void*));                                             \
    va_end(ap);                                                                         \
    return rc;                                                                          \
  }
AIRBAG_CURL_VARIADIC(AIRBAG_FORWARD)
#undef AIRBAG_FORWARD
#if defined(__clang__)
#pragma clang diagnostic pop
#endif

}  // extern "C"
