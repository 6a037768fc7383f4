// Fuzzes what airbag reads back from Redis, which anyone with access to it can
// write: the cache entry decoder and the RESP reply reader. Neither may crash;
// an entry that decodes re-encodes to the very same bytes (so a decoded entry
// is exactly one that airbag wrote), a cluster redirect that parses names
// a slot and port in range, and a CLUSTER SLOTS reply that parses maps only
// slots in range to nodes with a host and a port in range.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "proxy/shared_cache/entry_codec.h"
#include "proxy/shared_cache/resp.h"
#include "proxy/shared_cache/slot_map.h"

namespace {

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "shared_entry_fuzz: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace airbag::shared_cache;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  // The entry's own key is the one asked for: find it as the decoder would.
  for (std::string_view key : {std::string_view("k"), std::string_view("4:chat3:GET1:/")}) {
    auto e = decodeEntry(in, key, "chat");
    if (!e) continue;
    if (encodeEntry(*e) != in) fail("a decoded entry does not re-encode to its bytes");
    if (e->status < 100 || e->status > 599) fail("status out of range");
  }
  ReplyReader reader;
  bool broken = false;
  if (reader.feed(in)) {
    for (int i = 0; i < 64; ++i) {
      auto r = reader.next(&broken);
      if (!r) break;
      if (r->isError()) {
        if (auto d = parseRedirect(r->str)) {
          if (d->slot < 0 || d->slot >= kClusterSlots || d->port <= 0 || d->port > 65535)
            fail("redirect out of range");
        }
      }
      if (auto map = parseClusterSlots(*r, "seed"); map.ok()) {
        if (map->covered() <= 0 || map->nodes().empty()) fail("a map with no slot");
        for (int s = 0; s < kClusterSlots; ++s) {
          const NodeAddress* n = map->nodeFor(s);
          if (n && (n->host.empty() || n->port <= 0 || n->port > 65535))
            fail("a slot mapped to a node out of range");
        }
      }
    }
  }
  (void)hashSlot(in);
  return 0;
}
