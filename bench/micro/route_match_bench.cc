// Micro benchmark: matching a request against 100 routes (prefix, exact and
// regex routes mixed), the work every request does before anything else.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>

#include "airbag/config.h"
#include "proxy/http/headers.h"
#include "proxy/pipeline/snapshot.h"

namespace {

using airbag::Config;
using airbag::RouteConfig;
using airbag::pipeline::RouteTable;

Config hundredRoutes() {
  Config c;
  for (int i = 0; i < 100; ++i) {
    RouteConfig r;
    r.name = "r" + std::to_string(i);
    r.upstream = "model";
    switch (i % 3) {
      case 0:
        r.match.path_prefix = "/v" + std::to_string(i) + "/";
        break;
      case 1:
        r.match.path = "/exact/" + std::to_string(i);
        r.match.methods = {"POST"};
        break;
      default:
        r.match.path_regex = "^/v2/models/m" + std::to_string(i) + "/infer$";
        break;
    }
    c.routes.push_back(r);
  }
  return c;
}

void BM_RouteMatchLast(benchmark::State& state) {
  Config c = hundredRoutes();
  auto table = RouteTable::build(c);
  airbag::http::HeaderList headers;
  headers.add("host", "model");
  headers.add("content-type", "application/json");
  for (auto _ : state) {
    int idx = table->match("POST", "/v2/models/m98/infer", headers);
    benchmark::DoNotOptimize(idx);
  }
}
BENCHMARK(BM_RouteMatchLast);

void BM_RouteMatchFirst(benchmark::State& state) {
  Config c = hundredRoutes();
  auto table = RouteTable::build(c);
  airbag::http::HeaderList headers;
  for (auto _ : state) {
    int idx = table->match("GET", "/v0/chat", headers);
    benchmark::DoNotOptimize(idx);
  }
}
BENCHMARK(BM_RouteMatchFirst);

void BM_RouteMatchMiss(benchmark::State& state) {
  Config c = hundredRoutes();
  auto table = RouteTable::build(c);
  airbag::http::HeaderList headers;
  for (auto _ : state) {
    int idx = table->match("GET", "/nowhere", headers);
    benchmark::DoNotOptimize(idx);
  }
}
BENCHMARK(BM_RouteMatchMiss);

}  // namespace
