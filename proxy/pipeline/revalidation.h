// A stale-while-revalidate refresh: one upstream try made on behalf of no
// client, whose answer, if storable, replaces the stale entry. Owned by the
// worker's context (so shutdown frees it); it removes itself when done.
#pragma once

#include <list>
#include <memory>
#include <string>

#include "proxy/pipeline/upstream_try.h"
#include "proxy/pipeline/worker_context.h"

namespace airbag::pipeline {

class Revalidation final : public BackgroundTask, private UpstreamTry::Owner {
 public:
  // Starts the refresh of `key` for `route` with the request `head` + `body`
  // (copied) to `upstream`, and hands itself to ctx.background.
  static void launch(WorkerContext& ctx, std::shared_ptr<const Snapshot> snapshot,
                     const RouteConfig& route, UpstreamClient* upstream, std::string key,
                     std::string head, std::string body, absl::Time now);
  ~Revalidation() override;

 private:
  Revalidation(WorkerContext& ctx, std::shared_ptr<const Snapshot> snapshot,
               const RouteConfig& route, std::string key, std::string head, std::string body);

  // UpstreamTry::Owner
  AnswerMeta answerMeta() override { return {}; }
  void onTryDone(absl::Time now) override;
  void onTryCommitted() override {}

  WorkerContext& ctx_;
  std::shared_ptr<const Snapshot> snapshot_;
  const RouteConfig& route_;
  std::string key_, head_, body_;
  UpstreamTry try_;
  bool done_ = false;
  std::list<std::unique_ptr<BackgroundTask>>::iterator self_;
};

}  // namespace airbag::pipeline
