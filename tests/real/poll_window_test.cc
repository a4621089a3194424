// PollWindow's adaptation (real/poll_window.h) and the Ring spinning with it: waits that
// end within the maximum grow the window, longer ones and contended spins shrink it, and
// a ring whose peer answers promptly finds completions while spinning.
#include <fcntl.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <thread>

#include "real/poll_window.h"
#include "tests/support/real_loop.h"

namespace hast::real {
namespace {

using std::chrono::microseconds;

const Instant t0{std::chrono::seconds(100)};

TEST_CASE("PollWindow: short waits grow it by doubling up to the maximum", "[real][poll]") {
  PollWindow window(microseconds(50), microseconds(4));
  CHECK(window.current(t0) == Duration::zero());
  std::vector<Duration> seen;
  for (int i = 0; i < 6; i++) {
    window.record(microseconds(30), /*caught=*/false);
    seen.push_back(window.current(t0));
  }
  CHECK(seen == std::vector<Duration>{microseconds(4), microseconds(8), microseconds(16),
                                      microseconds(32), microseconds(50), microseconds(50)});
  // A wait the spin caught leaves it as it is.
  window.record(microseconds(10), /*caught=*/true);
  CHECK(window.current(t0) == microseconds(50));
}

TEST_CASE("PollWindow: long waits halve it down to zero", "[real][poll]") {
  PollWindow window(microseconds(64), microseconds(4));
  for (int i = 0; i < 10; i++) window.record(microseconds(1), false);
  REQUIRE(window.current(t0) == microseconds(64));
  window.record(microseconds(65), false);
  CHECK(window.current(t0) == microseconds(32));
  window.record(std::chrono::seconds(1), false);
  window.record(std::chrono::seconds(1), false);
  window.record(std::chrono::seconds(1), false);
  CHECK(window.current(t0) == microseconds(4));
  window.record(std::chrono::seconds(1), false);
  CHECK(window.current(t0) == Duration::zero());  // below grow_start: off
}

TEST_CASE("PollWindow: a contended spin rests spinning for the cooldown", "[real][poll]") {
  PollWindow window(microseconds(64), microseconds(4), std::chrono::milliseconds(100));
  for (int i = 0; i < 10; i++) window.record(microseconds(1), false);
  window.contended(t0);
  CHECK(window.current(t0 + std::chrono::milliseconds(99)) == Duration::zero());
  // Short waits during the rest grow it from zero; it applies once the rest is over.
  window.record(microseconds(1), false);
  CHECK(window.current(t0 + std::chrono::milliseconds(99)) == Duration::zero());
  CHECK(window.current(t0 + std::chrono::milliseconds(100)) == microseconds(4));
}

TEST_CASE("PollWindow: a zero maximum never spins", "[real][poll]") {
  PollWindow window(Duration::zero());
  for (int i = 0; i < 10; i++) window.record(microseconds(1), false);
  CHECK(window.current(t0) == Duration::zero());
}

struct Pipes {
  int ping[2]{-1, -1};
  int pong[2]{-1, -1};
  Pipes() {
    REQUIRE(::pipe2(ping, O_CLOEXEC) == 0);
    REQUIRE(::pipe2(pong, O_CLOEXEC) == 0);
  }
  ~Pipes() {
    for (int fd : {ping[0], ping[1], pong[0], pong[1]}) ::close(fd);
  }
};

// A fiber sends a byte to an echo thread and reads the answer through the ring, `rounds`
// times; the answer comes within microseconds, well inside `max`.
std::uint64_t spins_caught(Duration max, int rounds) {
  // Contention off: a loaded test machine must not turn the spins into blocking waits.
  test::RealLoop loop(64, RingPolling{.max = max,
                                      .contended = std::chrono::seconds(10),
                                      .only_on_idle_cpus = false});
  Pipes pipes;
  std::thread echo([&] {
    char byte = 0;
    while (::read(pipes.ping[0], &byte, 1) == 1 && byte != 'q') {
      if (::write(pipes.pong[1], &byte, 1) != 1) break;  // the reader then fails
    }
  });
  loop.run([&] {
    for (int i = 0; i < rounds; i++) {
      char byte = 'p';
      REQUIRE(::write(pipes.ping[1], &byte, 1) == 1);
      int got = loop.ring.run([&](io_uring_sqe* sqe) {
        io_uring_prep_read(sqe, pipes.pong[0], &byte, 1, 0);
      });
      REQUIRE(got == 1);
    }
  });
  char quit = 'q';
  REQUIRE(::write(pipes.ping[1], &quit, 1) == 1);
  echo.join();
  return loop.ring.caught_spinning();
}

TEST_CASE("Ring: with busypoll, prompt completions are found while spinning", "[real][poll]") {
  CHECK(spins_caught(std::chrono::milliseconds(50), 200) > 100);
  CHECK(spins_caught(Duration::zero(), 200) == 0);
}

}  // namespace
}  // namespace hast::real
