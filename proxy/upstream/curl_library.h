// libcurl, loaded when the first https upstream or health check needs it.
//
// libcurl brings some thirty shared libraries with it (OpenSSL, GnuTLS through
// librtmp, Kerberos, LDAP, ...). Linked at start, their relocated data alone
// doubled the private memory of an idle airbag that never makes an https call.
// So the binary does not link libcurl: this file defines the libcurl functions
// airbag calls, each forwarding to the real one in libcurl.so.4, which
// loadCurl() opens on first use. Call sites use the ordinary curl API.
//
// Calling a curl function before loadCurl() has succeeded is a bug and aborts
// with a message saying so.
#pragma once

#include "absl/status/status.h"

namespace airbag::upstream {

// Opens libcurl.so.4, resolves the functions airbag uses and runs
// curl_global_init, once per process. Thread-safe; later calls return the
// first call's result. Blocking (it reads files): call it at start or while a
// configuration is loaded, never from a worker's loop.
// Returns FailedPrecondition naming the library and the loader's error when
// libcurl is not installed or lacks a function.
absl::Status loadCurl();

}  // namespace airbag::upstream
