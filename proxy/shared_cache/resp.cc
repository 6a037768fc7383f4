// hiredis's protocol pieces wrapped as values.
#include "proxy/shared_cache/resp.h"

#include <hiredis/hiredis.h>

#include <charconv>

namespace airbag::shared_cache {
namespace {

Reply copyReply(const redisReply* r) {
  Reply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = Reply::Type::kString;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = Reply::Type::kStatus;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = Reply::Type::kError;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = Reply::Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = Reply::Type::kArray;
      out.elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i)
        out.elements.push_back(copyReply(r->element[i]));
      break;
    default:
      out.type = Reply::Type::kNil;
      break;
  }
  return out;
}

// hiredis 0.14 allocates an array's element table as soon as it reads the
// array's header, trusting the count: `*1239032609\r\n` alone asks calloc for
// 9.9 GB. Every array of one reply draws on one budget of elements; a reply
// over it breaks the reader (hiredis reports a NULL object as out of memory),
// and the connection is dropped as for any other protocol error. A cluster's
// slot map, the largest reply airbag asks for, has at most 16,384 ranges.
constexpr long kMaxElementsPerReply = 1L << 20;

using CreateArray = void* (*)(const redisReadTask*, int);

CreateArray& hiredisCreateArray() {
  static CreateArray f = nullptr;
  return f;
}

void* boundedArray(const redisReadTask* task, int elements) {
  auto* budget = static_cast<long*>(task->privdata);
  if (budget == nullptr || elements < 0 || elements > *budget) return nullptr;
  *budget -= elements;
  return hiredisCreateArray()(task, elements);
}

// hiredis's own reply functions, with createArray bounded.
redisReplyObjectFunctions* boundedFunctions() {
  static redisReplyObjectFunctions* fns = [] {
    static redisReplyObjectFunctions copy;
    redisReader* r = redisReaderCreate();
    copy = *r->fn;
    redisReaderFree(r);
    hiredisCreateArray() = copy.createArray;
    copy.createArray = boundedArray;
    return &copy;
  }();
  return fns;
}

}  // namespace

void appendCommand(std::string& out, absl::Span<const std::string_view> args) {
  // The RESP array, written directly (what redisFormatCommandArgv produces,
  // without its allocation per command).
  out += '*';
  out += std::to_string(args.size());
  out += "\r\n";
  for (std::string_view a : args) {
    out += '$';
    out += std::to_string(a.size());
    out += "\r\n";
    out.append(a);
    out += "\r\n";
  }
}

ReplyReader::ReplyReader()
    : reader_(redisReaderCreateWithFunctions(boundedFunctions())), budget_(kMaxElementsPerReply) {
  if (reader_) reader_->privdata = &budget_;
}
ReplyReader::~ReplyReader() { redisReaderFree(reader_); }

bool ReplyReader::feed(std::string_view bytes) {
  return reader_ && redisReaderFeed(reader_, bytes.data(), bytes.size()) == REDIS_OK;
}

std::optional<Reply> ReplyReader::next(bool* broken) {
  void* raw = nullptr;
  if (!reader_ || redisReaderGetReply(reader_, &raw) != REDIS_OK) {
    *broken = true;
    return std::nullopt;
  }
  if (!raw) return std::nullopt;
  budget_ = kMaxElementsPerReply;  // the next reply starts afresh
  auto* r = static_cast<redisReply*>(raw);
  Reply out = copyReply(r);
  freeReplyObject(r);
  return out;
}

std::optional<Redirect> parseRedirect(std::string_view error) {
  Redirect d;
  if (error.substr(0, 6) == "MOVED ") {
    error.remove_prefix(6);
  } else if (error.substr(0, 4) == "ASK ") {
    d.ask = true;
    error.remove_prefix(4);
  } else {
    return std::nullopt;
  }
  size_t sp = error.find(' ');
  if (sp == std::string_view::npos) return std::nullopt;
  std::string_view slot = error.substr(0, sp), addr = error.substr(sp + 1);
  size_t colon = addr.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string_view port = addr.substr(colon + 1);
  auto s = std::from_chars(slot.data(), slot.data() + slot.size(), d.slot);
  auto p = std::from_chars(port.data(), port.data() + port.size(), d.port);
  if (s.ec != std::errc() || s.ptr != slot.data() + slot.size() || p.ec != std::errc() ||
      p.ptr != port.data() + port.size() || d.slot < 0 || d.slot >= 16384 || d.port <= 0 ||
      d.port > 65535)
    return std::nullopt;
  d.host = std::string(addr.substr(0, colon));
  return d;
}

}  // namespace airbag::shared_cache
