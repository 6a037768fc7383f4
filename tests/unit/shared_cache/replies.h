// Redis replies built by hand for tests that play a server.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "proxy/shared_cache/resp.h"

namespace airbag::shared_cache::test_replies {

inline Reply integer(int64_t v) {
  Reply r;
  r.type = Reply::Type::kInteger;
  r.integer = v;
  return r;
}
inline Reply string(std::string s) {
  Reply r;
  r.type = Reply::Type::kString;
  r.str = std::move(s);
  return r;
}
inline Reply array(std::vector<Reply> e) {
  Reply r;
  r.type = Reply::Type::kArray;
  r.elements = std::move(e);
  return r;
}
inline Reply error(std::string s) {
  Reply r;
  r.type = Reply::Type::kError;
  r.str = std::move(s);
  return r;
}
// One CLUSTER SLOTS range as Redis 7 writes it: master then one replica,
// each [host, port, id, {}].
inline Reply range(int64_t start, int64_t end, std::string host, int64_t port) {
  return array({integer(start), integer(end),
                array({string(host), integer(port), string("id"), array({})}),
                array({string(host), integer(port + 100), string("replica"), array({})})});
}

}  // namespace airbag::shared_cache::test_replies
