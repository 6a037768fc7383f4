// Throwaway certificates for the TLS tests, made with the openssl command at test time in a
// private directory (removed with it): a CA and leaves it signs. Nothing secret is committed.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace airbag::testing {

// Runs the openssl command; the test fails on error.
inline bool openssl(std::vector<std::string> args) {
  args.insert(args.begin(), "openssl");
  auto r = runCommand(args);
  if (!r.ok() || !r->exit.success()) {
    ADD_FAILURE() << "openssl failed: " << (r.ok() ? r->err : std::string(r.status().message()));
    return false;
  }
  return true;
}

// A CA (ca.pem, ca.key) and leaf certificates (NAME.pem, NAME.key) in a private directory.
struct Certs {
  std::unique_ptr<TempDir> dir;
  std::string path(const std::string& name) const { return (dir->path() / name).string(); }

  // A leaf signed by the CA (subject CN=`name`) for `san`, valid for `days` (-1: already
  // expired); `ext` adds extension lines (e.g. extendedKeyUsage).
  bool leaf(const std::string& name, const std::string& san, int days,
            const std::string& ext = "") {
    auto file = dir->write(name + ".ext", "subjectAltName=" + san + "\n" + ext);
    if (!file.ok()) return false;
    return openssl({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", path(name + ".key"), "-out", path(name + ".csr"), "-subj",
                    "/CN=" + name}) &&
           openssl({"x509", "-req", "-in", path(name + ".csr"), "-CA", path("ca.pem"), "-CAkey",
                    path("ca.key"), "-CAcreateserial", "-out", path(name + ".pem"), "-days",
                    std::to_string(days), "-extfile", file->string()});
  }

  // Just the CA; add leaves with leaf().
  static std::unique_ptr<Certs> makeCa(const std::string& ca_name = "airbag-test-ca") {
    auto c = std::make_unique<Certs>();
    auto d = TempDir::create("airbag-certs");
    if (!d.ok()) return nullptr;
    c->dir = std::move(*d);
    if (!openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                  "-nodes", "-keyout", c->path("ca.key"), "-out", c->path("ca.pem"), "-days", "1",
                  "-subj", "/CN=" + ca_name}))
      return nullptr;
    return c;
  }
};

}  // namespace airbag::testing
