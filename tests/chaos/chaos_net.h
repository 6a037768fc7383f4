// A private two-namespace network for the chaos tests: the test process and airbag on one side,
// the upstream on the other, joined by a data link that the test impairs (latency with jitter,
// loss, a cut, dropped SYNs, resets) and a control link it leaves alone.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace airbag::testing {

// Two network namespaces made with `ip netns` and named after this process, so that runs never
// collide:
//   near ("airbag-chaos-PID-near"): this process (entered on create()), airbag and the clients,
//        all on its loopback;
//   far  ("airbag-chaos-PID-far"):  the upstream.
// Two veth pairs join them: the data link (near 10.77.0.1, far kFarData = 10.77.0.2), which
// airbag's upstream traffic takes and the impairments apply to, and the control link (near
// 10.77.1.1, far kFarControl = 10.77.1.2) that the test steers the upstream through.
//
// create() first removes namespaces left by chaos runs whose process is gone (a run killed by a
// timeout cannot clean up after itself). The destructor moves this thread back to the namespace
// it came from and deletes both namespaces (with the veths in them), whatever the test's outcome.
// Call from the main thread before any other thread starts: threads and children made afterwards
// inherit the near namespace.
class ChaosNet {
 public:
  static constexpr char kFarData[] = "10.77.0.2";
  static constexpr char kFarControl[] = "10.77.1.2";

  // Fails with a message naming what is missing (root / CAP_NET_ADMIN, the ip or iptables tool).
  static absl::StatusOr<std::unique_ptr<ChaosNet>> create();
  ~ChaosNet();
  ChaosNet(const ChaosNet&) = delete;
  ChaosNet& operator=(const ChaosNet&) = delete;

  const std::string& nearName() const { return near_; }
  const std::string& farName() const { return far_; }
  // The data link's device in the near namespace (what iptables rules there name).
  const std::string& dataDevice() const { return near_data_dev_; }

  // Runs iptables with `args` in the near or far namespace; fails with its stderr.
  absl::Status nearIptables(const std::vector<std::string>& args);
  absl::Status farIptables(const std::vector<std::string>& args);
  // Removes every impairment rule (flushes the filter table) on both sides.
  absl::Status clearImpairments();

  // The data link, both directions, as seen from the near side:
  // drops each packet with probability `p`,
  absl::Status dropRandomly(double p);
  // drops everything (the link is cut; no RST, no FIN reaches either side),
  absl::Status cut();
  // drops everything sent to the far side's `port`, connection attempts (SYNs) included: a
  // connect hangs, unrefused, and pooled connections go silent,
  absl::Status blackhole(int port);
  // and, on the far side, answers a fraction `p` of packets to `port` with a TCP reset.
  absl::Status resetRandomly(int port, double p);
  // Packets dropped by the near side's rules so far (iptables counters).
  absl::StatusOr<int64_t> droppedPackets();

  // Runs `fn` with this thread in the far namespace (sockets made there stay there).
  absl::Status inFar(const std::function<void()>& fn);

 private:
  ChaosNet() = default;
  absl::Status setUp();

  std::string near_;
  std::string far_;
  std::string near_data_dev_;
  int home_ns_fd_ = -1;
  int near_ns_fd_ = -1;
  int far_ns_fd_ = -1;
  bool entered_ = false;
};

// Holds every TCP packet of the data link for a random time before letting it go (latency with
// jitter, both directions), through netfilter's userspace queue: iptables sends the packets to
// queue `queue_num`, a thread here gives each its verdict after delay ± jitter. Made in the near
// namespace. Kernels without sch_netem (tc qdisc netem) still have this.
class PacketDelayer {
 public:
  static absl::StatusOr<std::unique_ptr<PacketDelayer>> start(ChaosNet& net,
                                                              std::chrono::milliseconds delay,
                                                              std::chrono::milliseconds jitter);
  ~PacketDelayer();
  PacketDelayer(const PacketDelayer&) = delete;
  PacketDelayer& operator=(const PacketDelayer&) = delete;

  // Packets delayed so far.
  int64_t packets() const { return packets_.load(); }

 private:
  struct Impl;
  PacketDelayer() = default;
  void run();

  std::unique_ptr<Impl> impl_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> packets_{0};
};

// A TCP server in the far namespace on kFarData:port() that accepts connections and never reads
// from them (the kernel's receive buffer fills, then the sender blocks). Connections are held
// until destruction.
class SinkServer {
 public:
  static absl::StatusOr<std::unique_ptr<SinkServer>> start(ChaosNet& net);
  ~SinkServer();
  SinkServer(const SinkServer&) = delete;
  SinkServer& operator=(const SinkServer&) = delete;

  int port() const { return port_; }
  int accepted() const { return accepted_.load(); }

 private:
  SinkServer() = default;
  void run();

  int listen_fd_ = -1;
  int wake_fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::atomic<int> accepted_{0};
  std::vector<int> held_;
};

}  // namespace airbag::testing
