// The cluster slot table and the CLUSTER SLOTS reply it is read from.
#include "proxy/shared_cache/slot_map.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "absl/strings/str_cat.h"

namespace airbag::shared_cache {
namespace {

bool equalsIgnoringCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::toupper(static_cast<unsigned char>(x)) ==
                  std::toupper(static_cast<unsigned char>(y));
         });
}

}  // namespace

std::string NodeAddress::name() const {
  if (host.find(':') != std::string::npos) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

const NodeAddress* SlotMap::nodeFor(int slot) const {
  if (slot < 0 || slot >= kClusterSlots || owner_[slot] < 0) return nullptr;
  return &nodes_[owner_[slot]];
}

int SlotMap::indexOf(const NodeAddress& node) {
  auto it = std::find(nodes_.begin(), nodes_.end(), node);
  if (it != nodes_.end()) return static_cast<int>(it - nodes_.begin());
  nodes_.push_back(node);
  return static_cast<int>(nodes_.size()) - 1;
}

void SlotMap::assign(int slot, const NodeAddress& node) {
  if (slot < 0 || slot >= kClusterSlots) return;
  owner_[slot] = static_cast<int16_t>(indexOf(node));
}

int SlotMap::covered() const {
  return static_cast<int>(
      std::count_if(owner_.begin(), owner_.end(), [](int16_t o) { return o >= 0; }));
}

absl::StatusOr<SlotMap> parseClusterSlots(const Reply& reply, std::string_view asked_host) {
  if (reply.type == Reply::Type::kError)
    return absl::UnavailableError(absl::StrCat("CLUSTER SLOTS: ", reply.str));
  if (reply.type != Reply::Type::kArray)
    return absl::InvalidArgumentError("CLUSTER SLOTS: the reply is not an array");
  SlotMap map;
  for (size_t i = 0; i < reply.elements.size(); ++i) {
    const Reply& range = reply.elements[i];
    auto bad = [i](const char* what) {
      return absl::InvalidArgumentError(absl::StrCat("CLUSTER SLOTS: range ", i, ": ", what));
    };
    if (range.type != Reply::Type::kArray || range.elements.size() < 3)
      return bad("not [start, end, master, ...]");
    const Reply& start = range.elements[0];
    const Reply& end = range.elements[1];
    const Reply& master = range.elements[2];
    if (start.type != Reply::Type::kInteger || end.type != Reply::Type::kInteger ||
        start.integer < 0 || end.integer >= kClusterSlots || start.integer > end.integer)
      return bad("the slots are not a range in 0..16383");
    if (master.type != Reply::Type::kArray || master.elements.size() < 2 ||
        master.elements[0].type != Reply::Type::kString ||
        master.elements[1].type != Reply::Type::kInteger || master.elements[1].integer <= 0 ||
        master.elements[1].integer > 65535)
      return bad("the master is not [host, port in 1..65535, ...]");
    NodeAddress node{master.elements[0].str, static_cast<int>(master.elements[1].integer)};
    if (node.host.empty() || node.host == "?") node.host = std::string(asked_host);
    if (node.host.empty()) return bad("the master has no host");
    int index = map.indexOf(node);
    for (int64_t s = start.integer; s <= end.integer; ++s)
      map.owner_[s] = static_cast<int16_t>(index);
  }
  if (map.nodes_.empty()) return absl::UnavailableError("CLUSTER SLOTS: no slot has a master");
  return map;
}

std::optional<std::string_view> commandKey(absl::Span<const std::string_view> args) {
  if (args.size() < 2) return std::nullopt;
  std::string_view name = args[0];
  for (std::string_view keyless : {"PING", "SCAN", "INFO", "ASKING", "CLUSTER", "AUTH", "SELECT",
                                   "DBSIZE", "FLUSHALL", "FLUSHDB", "READONLY"})
    if (equalsIgnoringCase(name, keyless)) return std::nullopt;
  for (std::string_view scripted :
       {"EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO"}) {
    if (!equalsIgnoringCase(name, scripted)) continue;
    int keys = 0;
    if (args.size() < 4) return std::nullopt;
    auto r = std::from_chars(args[2].data(), args[2].data() + args[2].size(), keys);
    if (r.ec != std::errc() || keys <= 0) return std::nullopt;
    return args[3];
  }
  return args[1];
}

}  // namespace airbag::shared_cache
