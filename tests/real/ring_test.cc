// The io_uring poller under the fiber scheduler: completions wake fibers, deadlines and
// cancellation cancel the kernel operation and still wait for it, batches larger than the
// submission queue go through, another thread can wake the poller.
#include <fcntl.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <cerrno>
#include <thread>

#include "real/clock.h"
#include "real/ring.h"
#include "tests/support/real_loop.h"

namespace hast::real {
namespace {

// A small ring: batches larger than its submission queue are part of the tests.
struct Loop : test::RealLoop {
  Loop() : test::RealLoop(8) {}
};

struct Pipe {
  int fds[2]{-1, -1};
  Pipe() { REQUIRE(::pipe2(fds, O_CLOEXEC) == 0); }
  ~Pipe() {
    ::close(fds[0]);
    ::close(fds[1]);
  }
};

TEST_CASE("Ring: a nop completes with its result", "[real][ring]") {
  Loop loop;
  int result = -1;
  REQUIRE(loop.scheduler.spawn(
      "nop", [&] { result = loop.ring.run([](io_uring_sqe* sqe) { io_uring_prep_nop(sqe); }); }));
  loop.run();
  CHECK(result == 0);
  CHECK(loop.ring.in_flight() == 0);
}

TEST_CASE("Ring: more operations than submission slots all complete", "[real][ring]") {
  Loop loop;
  int done = 0;
  REQUIRE(loop.scheduler.spawn("many", [&] {
    for (int i = 0; i < 40; i++) {
      REQUIRE(loop.scheduler.spawn("nop", [&] {
        if (loop.ring.run([](io_uring_sqe* sqe) { io_uring_prep_nop(sqe); }) == 0) done++;
      }));
    }
  }));
  loop.run();
  CHECK(done == 40);
}

// A write to a pipe completes inside the submitting io_uring_enter, so a fiber that runs
// next sees the byte only if the write was submitted before the scheduler ran out of
// fibers: the first disk operation goes at once, the second of the burst waits.
TEST_CASE("Ring: the first disk operation of a burst is submitted while other fibers run",
          "[real][ring]") {
  Loop loop;
  Pipe first;
  Pipe second;
  REQUIRE(::fcntl(first.fds[0], F_SETFL, O_NONBLOCK) == 0);
  REQUIRE(::fcntl(second.fds[0], F_SETFL, O_NONBLOCK) == 0);
  int results[2] = {0, 0};
  ssize_t seen[2] = {0, 0};
  auto write_one = [&](Pipe& pipe, int& result) {
    result =
        loop.ring.run([&](io_uring_sqe* sqe) { io_uring_prep_write(sqe, pipe.fds[1], "x", 1, 0); });
  };
  REQUIRE(loop.scheduler.spawn("first", [&] { write_one(first, results[0]); }));
  REQUIRE(loop.scheduler.spawn("second", [&] { write_one(second, results[1]); }));
  REQUIRE(loop.scheduler.spawn("observer", [&] {
    char byte = 0;
    seen[0] = ::read(first.fds[0], &byte, 1);
    seen[1] = ::read(second.fds[0], &byte, 1);
  }));
  loop.run();
  CHECK(results[0] == 1);
  CHECK(results[1] == 1);
  CHECK(seen[0] == 1);   // submitted at once: other fibers were runnable
  CHECK(seen[1] == -1);  // the first was still in flight: this one joined the batch
  CHECK(loop.ring.in_flight() == 0);
}

TEST_CASE("Ring: a deadline cancels the read and reports a timeout", "[real][ring]") {
  Loop loop;
  Pipe pipe;
  char byte = 0;
  int result = 0;
  REQUIRE(loop.scheduler.spawn("reader", [&] {
    Deadline deadline = deadline_after(loop.clock, std::chrono::milliseconds(20));
    result = loop.ring.run(
        [&](io_uring_sqe* sqe) { io_uring_prep_read(sqe, pipe.fds[0], &byte, 1, 0); }, deadline);
  }));
  loop.run();
  CHECK(result == -ETIMEDOUT);
  // The cancelled read did not consume what is written afterwards.
  REQUIRE(::write(pipe.fds[1], "x", 1) == 1);
  char again = 0;
  CHECK(::read(pipe.fds[0], &again, 1) == 1);
  CHECK(again == 'x');
}

TEST_CASE("Ring: cancelling the fiber cancels its operation", "[real][ring]") {
  Loop loop;
  Pipe pipe;
  char byte = 0;
  int result = 0;
  auto reader = loop.scheduler.spawn("reader", [&] {
    result = loop.ring.run(
        [&](io_uring_sqe* sqe) { io_uring_prep_read(sqe, pipe.fds[0], &byte, 1, 0); });
  });
  REQUIRE(reader);
  REQUIRE(loop.scheduler.spawn("canceller", [&] {
    REQUIRE(loop.scheduler.sleep_for(std::chrono::milliseconds(5)));
    loop.scheduler.cancel(*reader);
  }));
  loop.run();
  CHECK(result == -ECANCELED);
}

TEST_CASE("Ring: a completion racing the deadline keeps its result", "[real][ring]") {
  Loop loop;
  Pipe pipe;
  REQUIRE(::write(pipe.fds[1], "y", 1) == 1);
  char byte = 0;
  int result = 0;
  REQUIRE(loop.scheduler.spawn("reader", [&] {
    result =
        loop.ring.run([&](io_uring_sqe* sqe) { io_uring_prep_read(sqe, pipe.fds[0], &byte, 1, 0); },
                      loop.clock.now());
  }));
  loop.run();
  // Either the read won (1 byte) or the deadline did; never a lost byte with a timeout.
  if (result == 1) {
    CHECK(byte == 'y');
  } else {
    CHECK(result == -ETIMEDOUT);
    CHECK(::read(pipe.fds[0], &byte, 1) == 1);
  }
}

TEST_CASE("Ring: notify() from another thread wakes the poller", "[real][ring]") {
  Loop loop;
  auto sleeper = loop.scheduler.spawn("sleeper", [&] {
    CHECK(loop.scheduler.sleep_for(std::chrono::seconds(30)).error().code() == Errc::cancelled);
  });
  REQUIRE(sleeper);
  loop.ring.set_on_notify([&] { loop.scheduler.cancel(*sleeper); });
  std::thread other([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    loop.ring.notify();
  });
  auto start = std::chrono::steady_clock::now();
  loop.run();
  other.join();
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(10));
  CHECK(loop.ring.notify_count() >= 1);
}

TEST_CASE("GuardedStacks: stacks are reused and sized in pages", "[real][stacks]") {
  GuardedStacks stacks(100 * 1024 + 1);
  CHECK(stacks.stack_size() % 4096 == 0);
  Stack a = stacks.allocate();
  stacks.deallocate(a);
  Stack b = stacks.allocate();
  CHECK(a.base == b.base);
  CHECK(stacks.mapped() == 1);
  stacks.deallocate(b);
}

}  // namespace
}  // namespace hast::real

namespace hast::real {
namespace {

TEST_CASE("errno_for and errno_error map the kinds a frontend answers with", "[real][ring]") {
  CHECK(errno_for(Errc::invalid_argument) == EINVAL);
  CHECK(errno_for(Errc::no_space) == ENOSPC);
  CHECK(errno_for(Errc::unsupported) == EOPNOTSUPP);
  CHECK(errno_for(Errc::cancelled) == EIO);
  CHECK(errno_for(Errc::disconnected) == EIO);
  for (Errc code : {Errc::invalid_argument, Errc::no_space, Errc::unsupported}) {
    CHECK(errno_error(-errno_for(code), "round trip").code() == code);
  }
}

}  // namespace
}  // namespace hast::real
