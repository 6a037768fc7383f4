// The chaos tests' network: namespaces and veths through `ip`, impairments through iptables,
// latency through netfilter's userspace queue.
#include "tests/chaos/chaos_net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/netfilter.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <queue>
#include <random>
#include <regex>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "airbag/status_macros.h"
#include "tests/integration/harness.h"

extern "C" {
#include <libnetfilter_queue/libnetfilter_queue.h>
}

namespace airbag::testing {
namespace {

using std::chrono::milliseconds;

constexpr char kPrefix[] = "airbag-chaos-";
constexpr char kNearData[] = "10.77.0.1";
constexpr char kNearControl[] = "10.77.1.1";
constexpr int kQueueNum = 7;

// Runs argv to completion; its stdout, or an error naming the command and its stderr.
absl::StatusOr<std::string> output(std::vector<std::string> argv) {
  std::string line = absl::StrJoin(argv, " ");
  auto r = runCommand(std::move(argv), milliseconds(10000));
  if (!r.ok()) return absl::InternalError(absl::StrCat(line, ": ", r.status().message()));
  if (!r->exit.success()) {
    return absl::InternalError(absl::StrCat(line, ": ", r->exit.toString(), ": ", r->err));
  }
  return r->out;
}

absl::Status run(std::vector<std::string> argv) { return output(std::move(argv)).status(); }

int openNamespace(const std::string& path) { return ::open(path.c_str(), O_RDONLY | O_CLOEXEC); }

// Deletes the namespaces of earlier chaos runs whose process no longer exists.
void removeStaleNamespaces() {
  auto list = output({"ip", "netns", "list"});
  if (!list.ok()) return;
  static const std::regex kName("^airbag-chaos-([0-9]+)-(near|far)");
  for (absl::string_view line : absl::StrSplit(*list, '\n', absl::SkipEmpty())) {
    std::string name(line.substr(0, line.find(' ')));
    std::smatch m;
    if (!std::regex_search(name, m, kName)) continue;
    int pid = 0;
    if (!absl::SimpleAtoi(m[1].str(), &pid)) continue;
    if (::kill(pid, 0) == 0 || errno != ESRCH) continue;
    (void)run({"ip", "netns", "del", name});
  }
}

// The iptables packet counter of every DROP rule in `listing` (iptables -L -v -x -n).
int64_t sumDropCounters(const std::string& listing) {
  int64_t sum = 0;
  for (absl::string_view line : absl::StrSplit(listing, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    int64_t pkts = 0;
    if (f.size() >= 3 && f[2] == "DROP" && absl::SimpleAtoi(f[0], &pkts)) sum += pkts;
  }
  return sum;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ChaosNet>> ChaosNet::create() {
  if (::geteuid() != 0) {
    return absl::FailedPreconditionError(
        "chaos tests make network namespaces and need root (CAP_NET_ADMIN)");
  }
  for (const char* tool : {"ip", "iptables"}) {
    auto r = runCommand({"sh", "-c", absl::StrCat("command -v ", tool)});
    if (!r.ok() || !r->exit.success()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "chaos tests need `", tool, "` (Debian packages iproute2 and iptables; scripts/setup.sh)"));
    }
  }
  removeStaleNamespaces();
  std::unique_ptr<ChaosNet> net(new ChaosNet());
  const std::string pid = std::to_string(::getpid());
  net->near_ = absl::StrCat(kPrefix, pid, "-near");
  net->far_ = absl::StrCat(kPrefix, pid, "-far");
  net->near_data_dev_ = absl::StrCat("acd", pid, "n");
  absl::Status s = net->setUp();
  if (!s.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot make the chaos network (needs CAP_NET_ADMIN): ", s.message()));
  }
  return net;
}

absl::Status ChaosNet::setUp() {
  const std::string pid = std::to_string(::getpid());
  const std::string far_data_dev = absl::StrCat("acd", pid, "f");
  const std::string near_ctl_dev = absl::StrCat("acc", pid, "n");
  const std::string far_ctl_dev = absl::StrCat("acc", pid, "f");
  AIRBAG_RETURN_IF_ERROR(run({"ip", "netns", "add", near_}));
  AIRBAG_RETURN_IF_ERROR(run({"ip", "netns", "add", far_}));
  // Made inside the namespaces, so deleting them deletes the veths too.
  for (const auto& [n, f] : {std::pair{near_data_dev_, far_data_dev},
                             std::pair{near_ctl_dev, far_ctl_dev}}) {
    AIRBAG_RETURN_IF_ERROR(run({"ip", "link", "add", "name", n, "netns", near_, "type", "veth",
                                "peer", "name", f, "netns", far_}));
  }
  struct Address {
    const std::string& ns;
    std::string dev;
    std::string cidr;
  };
  const Address addresses[] = {{near_, near_data_dev_, absl::StrCat(kNearData, "/24")},
                               {near_, near_ctl_dev, absl::StrCat(kNearControl, "/24")},
                               {far_, far_data_dev, absl::StrCat(kFarData, "/24")},
                               {far_, far_ctl_dev, absl::StrCat(kFarControl, "/24")}};
  for (const Address& a : addresses) {
    AIRBAG_RETURN_IF_ERROR(run({"ip", "-n", a.ns, "addr", "add", a.cidr, "dev", a.dev}));
    AIRBAG_RETURN_IF_ERROR(run({"ip", "-n", a.ns, "link", "set", a.dev, "up"}));
  }
  AIRBAG_RETURN_IF_ERROR(run({"ip", "-n", near_, "link", "set", "lo", "up"}));
  AIRBAG_RETURN_IF_ERROR(run({"ip", "-n", far_, "link", "set", "lo", "up"}));

  home_ns_fd_ = openNamespace("/proc/thread-self/ns/net");
  near_ns_fd_ = openNamespace("/run/netns/" + near_);
  far_ns_fd_ = openNamespace("/run/netns/" + far_);
  if (home_ns_fd_ < 0 || near_ns_fd_ < 0 || far_ns_fd_ < 0) {
    return absl::InternalError(absl::StrCat("open namespace: ", std::strerror(errno)));
  }
  if (::setns(near_ns_fd_, CLONE_NEWNET) != 0) {
    return absl::InternalError(absl::StrCat("setns: ", std::strerror(errno)));
  }
  entered_ = true;
  return absl::OkStatus();
}

ChaosNet::~ChaosNet() {
  if (entered_) (void)::setns(home_ns_fd_, CLONE_NEWNET);
  for (int fd : {home_ns_fd_, near_ns_fd_, far_ns_fd_}) {
    if (fd >= 0) ::close(fd);
  }
  for (const std::string& name : {near_, far_}) {
    if (!name.empty()) (void)run({"ip", "netns", "del", name});
  }
}

absl::Status ChaosNet::nearIptables(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"iptables", "-w"};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(std::move(argv));
}

absl::Status ChaosNet::farIptables(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"ip", "netns", "exec", far_, "iptables", "-w"};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(std::move(argv));
}

absl::Status ChaosNet::clearImpairments() {
  AIRBAG_RETURN_IF_ERROR(nearIptables({"-F"}));
  return farIptables({"-F"});
}

// Drops are made on arrival (INPUT) on each side: a packet dropped on its way out (OUTPUT) would
// fail the sender's write with EPERM at once, which no real network does.
absl::Status ChaosNet::dropRandomly(double p) {
  const std::string prob = absl::StrCat(p);
  AIRBAG_RETURN_IF_ERROR(nearIptables({"-A", "INPUT", "-i", near_data_dev_, "-m", "statistic",
                                       "--mode", "random", "--probability", prob, "-j", "DROP"}));
  return farIptables({"-A", "INPUT", "-s", kNearData, "-m", "statistic", "--mode", "random",
                      "--probability", prob, "-j", "DROP"});
}

absl::Status ChaosNet::cut() {
  AIRBAG_RETURN_IF_ERROR(nearIptables({"-A", "INPUT", "-i", near_data_dev_, "-j", "DROP"}));
  return farIptables({"-A", "INPUT", "-s", kNearData, "-j", "DROP"});
}

absl::Status ChaosNet::blackhole(int port) {
  return farIptables({"-A", "INPUT", "-s", kNearData, "-p", "tcp", "--dport",
                      std::to_string(port), "-j", "DROP"});
}

absl::Status ChaosNet::resetRandomly(int port, double p) {
  return farIptables({"-A", "INPUT", "-s", kNearData, "-p", "tcp", "--dport",
                      std::to_string(port), "-m", "statistic", "--mode", "random",
                      "--probability", absl::StrCat(p), "-j", "REJECT", "--reject-with",
                      "tcp-reset"});
}

absl::StatusOr<int64_t> ChaosNet::droppedPackets() {
  AIRBAG_ASSIGN_OR_RETURN(std::string near, output({"iptables", "-w", "-L", "-v", "-x", "-n"}));
  AIRBAG_ASSIGN_OR_RETURN(std::string far, output({"ip", "netns", "exec", far_, "iptables", "-w",
                                                   "-L", "-v", "-x", "-n"}));
  return sumDropCounters(near) + sumDropCounters(far);
}

absl::Status ChaosNet::inFar(const std::function<void()>& fn) {
  if (::setns(far_ns_fd_, CLONE_NEWNET) != 0) {
    return absl::InternalError(absl::StrCat("setns far: ", std::strerror(errno)));
  }
  fn();
  if (::setns(near_ns_fd_, CLONE_NEWNET) != 0) {
    return absl::InternalError(absl::StrCat("setns near: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------

struct PacketDelayer::Impl {
  using Due = std::pair<std::chrono::steady_clock::time_point, uint32_t>;
  ChaosNet* net = nullptr;
  nfq_handle* handle = nullptr;
  nfq_q_handle* queue = nullptr;
  int fd = -1;
  std::priority_queue<Due, std::vector<Due>, std::greater<Due>> held;
  std::mt19937_64 rng{12};
  milliseconds delay{0};
  milliseconds jitter{0};
  std::atomic<int64_t>* packets = nullptr;

  static int onPacket(nfq_q_handle*, nfgenmsg*, nfq_data* nfa, void* data) {
    auto* self = static_cast<Impl*>(data);
    nfqnl_msg_packet_hdr* ph = nfq_get_msg_packet_hdr(nfa);
    if (ph == nullptr) return 0;
    std::uniform_int_distribution<int64_t> spread(-self->jitter.count() * 1000,
                                                  self->jitter.count() * 1000);
    auto at = std::chrono::steady_clock::now() + self->delay +
              std::chrono::microseconds(spread(self->rng));
    self->held.emplace(at, ntohl(ph->packet_id));
    self->packets->fetch_add(1);
    return 0;
  }

  std::vector<std::string> rule(const char* chain, const char* dir) const {
    return {chain, dir, net->dataDevice(), "-p", "tcp", "-j", "NFQUEUE", "--queue-num",
            std::to_string(kQueueNum), "--queue-bypass"};
  }

  void releaseDue(bool all) {
    auto now = std::chrono::steady_clock::now();
    while (!held.empty() && (all || held.top().first <= now)) {
      nfq_set_verdict(queue, held.top().second, NF_ACCEPT, 0, nullptr);
      held.pop();
    }
  }
};

absl::StatusOr<std::unique_ptr<PacketDelayer>> PacketDelayer::start(ChaosNet& net,
                                                                    milliseconds delay,
                                                                    milliseconds jitter) {
  std::unique_ptr<PacketDelayer> d(new PacketDelayer());
  d->impl_ = std::make_unique<Impl>();
  Impl& impl = *d->impl_;
  impl.net = &net;
  impl.delay = delay;
  impl.jitter = jitter;
  impl.packets = &d->packets_;
  impl.handle = nfq_open();
  if (impl.handle == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("nfq_open: ", std::strerror(errno), " (netfilter queue support missing?)"));
  }
  impl.queue = nfq_create_queue(impl.handle, kQueueNum, &Impl::onPacket, &impl);
  if (impl.queue == nullptr) {
    nfq_close(impl.handle);
    return absl::FailedPreconditionError(absl::StrCat("nfq_create_queue: ", std::strerror(errno)));
  }
  if (nfq_set_mode(impl.queue, NFQNL_COPY_META, 0) < 0) {
    return absl::InternalError("nfq_set_mode failed");
  }
  nfq_set_queue_maxlen(impl.queue, 100000);
  impl.fd = nfq_fd(impl.handle);
  int big = 8 * 1024 * 1024;
  ::setsockopt(impl.fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
  d->thread_ = std::thread([p = d.get()] { p->run(); });
  for (const char* chain : {"INPUT", "OUTPUT"}) {
    const char* dir = std::string_view(chain) == "INPUT" ? "-i" : "-o";
    std::vector<std::string> args = impl.rule(chain, dir);
    args.insert(args.begin(), "-A");
    AIRBAG_RETURN_IF_ERROR(net.nearIptables(args));
  }
  return d;
}

void PacketDelayer::run() {
  Impl& impl = *impl_;
  alignas(8) char buf[65536];
  while (!stop_.load()) {
    int timeout = 20;
    if (!impl.held.empty()) {
      auto wait = std::chrono::duration_cast<milliseconds>(impl.held.top().first -
                                                           std::chrono::steady_clock::now());
      timeout = std::max<int>(0, std::min<int>(timeout, static_cast<int>(wait.count())));
    }
    pollfd p{impl.fd, POLLIN, 0};
    if (::poll(&p, 1, timeout) > 0) {
      for (;;) {
        ssize_t n = ::recv(impl.fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n <= 0) break;  // EAGAIN, or ENOBUFS (the kernel dropped some: TCP resends them)
        nfq_handle_packet(impl.handle, buf, static_cast<int>(n));
      }
    }
    impl.releaseDue(false);
  }
}

PacketDelayer::~PacketDelayer() {
  for (const char* chain : {"INPUT", "OUTPUT"}) {
    const char* dir = std::string_view(chain) == "INPUT" ? "-i" : "-o";
    std::vector<std::string> args = impl_->rule(chain, dir);
    args.insert(args.begin(), "-D");
    (void)impl_->net->nearIptables(args);
  }
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
  impl_->releaseDue(true);
  nfq_destroy_queue(impl_->queue);
  nfq_close(impl_->handle);
}

// ---------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<SinkServer>> SinkServer::start(ChaosNet& net) {
  std::unique_ptr<SinkServer> s(new SinkServer());
  std::string error;
  AIRBAG_RETURN_IF_ERROR(net.inFar([&] {
    s->listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->listen_fd_ < 0) {
      error = std::strerror(errno);
      return;
    }
    // A small receive window, inherited by accepted sockets: a sender blocks early.
    int small = 4096;
    ::setsockopt(s->listen_fd_, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    ::inet_pton(AF_INET, ChaosNet::kFarData, &a.sin_addr);
    if (::bind(s->listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
        ::listen(s->listen_fd_, 128) != 0) {
      error = std::strerror(errno);
      return;
    }
    socklen_t len = sizeof(a);
    ::getsockname(s->listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    s->port_ = ntohs(a.sin_port);
  }));
  if (!error.empty()) return absl::InternalError(absl::StrCat("sink server: ", error));
  s->wake_fd_ = ::eventfd(0, EFD_CLOEXEC);
  s->thread_ = std::thread([p = s.get()] { p->run(); });
  return s;
}

void SinkServer::run() {
  for (;;) {
    pollfd p[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (::poll(p, 2, 1000) < 0 && errno != EINTR) return;
    if (p[1].revents != 0) return;
    if (p[0].revents & POLLIN) {
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) {
        held_.push_back(fd);
        accepted_.fetch_add(1);
      }
    }
  }
}

SinkServer::~SinkServer() {
  uint64_t one = 1;
  if (wake_fd_ >= 0) (void)!::write(wake_fd_, &one, sizeof(one));
  if (thread_.joinable()) thread_.join();
  for (int fd : held_) ::close(fd);
  for (int fd : {listen_fd_, wake_fd_}) {
    if (fd >= 0) ::close(fd);
  }
}

}  // namespace airbag::testing
