// hop_bench: what one network round trip between two processes costs on this machine. Not
// a test: it prints figures; scripts/bench puts them next to issue 7's QD1 latency target.
//
//   build/bench/hop_bench [--trips N] [--machine]
//
// Why: a fullsync write is answered only after the secondary's reply (hast-spec.md §7), so
// its latency is an unreplicated server's plus at least one round trip to the secondary
// and the secondary's own work. On a virtual machine that round trip is mostly the cost of
// waking a thread whose vCPU halted; this measures it with nothing of hast in the way.
//
// What: a client and a server process on loopback (127.0.0.1 -> 127.0.0.2, TCP_NODELAY,
// as two hastd), the client sends 4 KiB (a write's header and data fit in that), the
// server answers 64 bytes (a reply), one trip at a time, with a pause between trips so
// both sides go idle as between QD1 requests. Placements, each a fresh pair of processes:
// - "free": the scheduler places both (what two hastd get);
// - "apart": pinned to two different CPUs (what two hosts get, a CPU each);
// - "together": both pinned to one CPU (no cross-CPU wake-up at all);
// - "spin": apart, and the receivers poll without sleeping (what `busypoll` buys).
// Each prints p50, p90 and p99 of the round trip in microseconds. --machine prints
// `<placement>_p50 <us>` lines for scripts/bench. A placement that needs two CPUs is
// skipped on a one-CPU machine.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t request_bytes = 4096;
constexpr std::size_t reply_bytes = 64;
constexpr auto pause_between_trips = std::chrono::microseconds(150);

struct Placement {
  const char* name;
  int client_cpu;  // -1: not pinned
  int server_cpu;
  bool spin;
};

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "hop_bench: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

void pin(int cpu) {
  if (cpu < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0) die("sched_setaffinity");
}

sockaddr_in loopback(const char* address, std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  if (inet_pton(AF_INET, address, &a.sin_addr) != 1) die("inet_pton");
  return a;
}

void no_delay(int fd) {
  int one = 1;
  if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) die("TCP_NODELAY");
}

// Receives exactly `n` bytes; false at end of stream. `spin`: polls without sleeping.
bool receive(int fd, char* buffer, std::size_t n, bool spin) {
  std::size_t got = 0;
  while (got < n) {
    ssize_t r = recv(fd, buffer + got, n - got, spin ? MSG_DONTWAIT : 0);
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (r < 0) die("recv");
    if (r == 0) return false;
    got += static_cast<std::size_t>(r);
  }
  return true;
}

void send_all(int fd, const char* buffer, std::size_t n) {
  std::size_t sent = 0;
  while (sent < n) {
    ssize_t r = send(fd, buffer + sent, n - sent, MSG_NOSIGNAL);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) die("send");
    sent += static_cast<std::size_t>(r);
  }
}

// The server: answers each request until the client closes. Runs in the child.
[[noreturn]] void serve(int listener, const Placement& p) {
  pin(p.server_cpu);
  int fd = accept(listener, nullptr, nullptr);
  if (fd < 0) die("accept");
  no_delay(fd);
  std::vector<char> buffer(request_bytes);
  while (receive(fd, buffer.data(), request_bytes, p.spin)) {
    send_all(fd, buffer.data(), reply_bytes);
  }
  std::_Exit(0);
}

// The client: `trips` round trips, their durations in microseconds, sorted.
std::vector<double> drive(std::uint16_t port, const Placement& p, int trips) {
  pin(p.client_cpu);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) die("socket");
  sockaddr_in self = loopback("127.0.0.1", 0);
  if (bind(fd, reinterpret_cast<sockaddr*>(&self), sizeof self) != 0) die("bind 127.0.0.1");
  sockaddr_in server = loopback("127.0.0.2", port);
  if (connect(fd, reinterpret_cast<sockaddr*>(&server), sizeof server) != 0) die("connect");
  no_delay(fd);
  std::vector<char> buffer(request_bytes, 'h');
  std::vector<double> us;
  us.reserve(static_cast<std::size_t>(trips));
  for (int i = 0; i < trips; ++i) {
    auto start = Clock::now();
    send_all(fd, buffer.data(), request_bytes);
    if (!receive(fd, buffer.data(), reply_bytes, p.spin)) die("server closed");
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
    std::this_thread::sleep_for(pause_between_trips);
  }
  close(fd);
  std::sort(us.begin(), us.end());
  return us;
}

// A listening socket on 127.0.0.2 and the port the kernel gave it.
int listen_on_loopback2(std::uint16_t& port) {
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  if (listener < 0) die("socket");
  sockaddr_in address = loopback("127.0.0.2", 0);
  if (bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    die("bind 127.0.0.2");
  }
  socklen_t length = sizeof address;
  if (listen(listener, 1) != 0 ||
      getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    die("listen");
  }
  port = ntohs(address.sin_port);
  return listener;
}

// Reads `trips` figures the client process writes to `fd`.
std::vector<double> read_figures(int fd, int trips) {
  std::vector<double> us(static_cast<std::size_t>(trips));
  std::size_t want = us.size() * sizeof(double), got = 0;
  while (got < want) {
    ssize_t r = read(fd, reinterpret_cast<char*>(us.data()) + got, want - got);
    if (r <= 0) die("reading the client's figures");
    got += static_cast<std::size_t>(r);
  }
  return us;
}

// One placement, in a fresh pair of processes; the client runs in a child too, so pinning
// leaves this process alone.
std::vector<double> measure(const Placement& p, int trips) {
  std::uint16_t port = 0;
  int listener = listen_on_loopback2(port);
  pid_t server = fork();
  if (server < 0) die("fork");
  if (server == 0) serve(listener, p);
  close(listener);
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) die("pipe");
  pid_t client = fork();
  if (client < 0) die("fork");
  if (client == 0) {
    std::vector<double> us = drive(port, p, trips);
    ssize_t n = write(pipe_fds[1], us.data(), us.size() * sizeof(double));
    std::_Exit(n == static_cast<ssize_t>(us.size() * sizeof(double)) ? 0 : 1);
  }
  close(pipe_fds[1]);
  std::vector<double> us = read_figures(pipe_fds[0], trips);
  close(pipe_fds[0]);
  for (pid_t child : {client, server}) {
    int status = 0;
    if (waitpid(child, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      std::fprintf(stderr, "hop_bench: a child process failed (%s)\n", p.name);
      std::exit(1);
    }
  }
  return us;
}

// The CPUs this process may run on, lowest first.
std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) die("sched_getaffinity");
  std::vector<int> cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  }
  return cpus;
}

double percentile(const std::vector<double>& sorted, double q) {
  return sorted[std::min(sorted.size() - 1, static_cast<std::size_t>(q * sorted.size()))];
}

int usage() {
  std::fprintf(stderr, "usage: hop_bench [--trips N] [--machine]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  int trips = 10000;
  bool machine = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--machine") {
      machine = true;
    } else if (arg == "--trips" && i + 1 < argc) {
      trips = std::atoi(argv[++i]);
      if (trips < 100) return usage();
    } else {
      return usage();
    }
  }
  std::vector<int> cpus = allowed_cpus();
  int first = cpus.empty() ? -1 : cpus[0];
  int second = cpus.size() < 2 ? -1 : cpus[1];
  const Placement placements[] = {{"free", -1, -1, false},
                                  {"apart", first, second, false},
                                  {"together", first, first, false},
                                  {"spin", first, second, true}};
  if (!machine) {
    std::printf("loopback TCP round trip, %zu-byte request, %zu-byte reply, %d trips, us:\n",
                request_bytes, reply_bytes, trips);
  }
  for (const Placement& p : placements) {
    if (p.client_cpu != p.server_cpu && (p.client_cpu < 0 || p.server_cpu < 0)) continue;
    std::vector<double> us = measure(p, trips);
    if (machine) {
      std::printf("%s_p50 %.1f\n%s_p99 %.1f\n", p.name, percentile(us, 0.5), p.name,
                  percentile(us, 0.99));
    } else {
      std::printf("  %-9s p50 %7.1f  p90 %7.1f  p99 %7.1f\n", p.name, percentile(us, 0.5),
                  percentile(us, 0.9), percentile(us, 0.99));
    }
    std::fflush(stdout);
  }
  return 0;
}
