// ThreadHost and its ResourceThreads (real/resource_thread.h): work handed to a resource
// runs on that resource's own named thread while the main thread's scheduler keeps
// running; cancelling the caller cancels the work and still waits for it; a connection
// accepted on the main ring moves to the resource's ring with no byte lost; stop() joins
// the thread and later calls fail.
#include <pthread.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "core/replication/node.h"
#include "real/log.h"
#include "real/net.h"
#include "real/resource_thread.h"
#include "tests/support/real_loop.h"

namespace {

using namespace std::chrono_literals;
using hast::Errc;
using hast::Instant;
using hast::test::RealLoop;

hast::config::ResourceConfig resource_named(const std::string& name) {
  hast::config::ResourceConfig resource;
  resource.name = name;
  return resource;
}

std::string current_thread_name() {
  char name[16] = {};
  REQUIRE(pthread_getname_np(pthread_self(), name, sizeof name) == 0);
  return name;
}

struct Fixture {
  // An executor for resource `name`, its thread running.
  std::unique_ptr<hast::replication::ResourceExecutor> launched(const std::string& name) {
    auto executor = host.create(resource_named(name));
    REQUIRE(executor);
    REQUIRE(host.launch());
    return std::move(*executor);
  }

  RealLoop loop;
  hast::real::StderrLog log;
  hast::real::ThreadHost host{loop.scheduler, loop.ring, log, 256 * 1024, "/tmp"};
};

TEST_CASE("ThreadHost: work runs on the resource's named thread, the main one keeps going",
          "[resource_thread]") {
  Fixture f;
  auto executor = f.launched("shared");
  std::thread::id main_id = std::this_thread::get_id();
  std::thread::id work_id;
  std::string work_name;
  int main_ticks = 0;
  int ticks_while_working = -1;
  bool slept = false;
  bool done = false;
  f.loop.spawn("ticker", [&] {
    while (!done) {
      main_ticks++;
      REQUIRE(f.loop.scheduler.sleep_for(5ms));
    }
  });
  f.loop.run([&] {
    auto ran = executor->run([&] {
      work_id = std::this_thread::get_id();
      work_name = current_thread_name();
      int before = main_ticks;
      // A wait on the resource's own scheduler; the main thread ticks meanwhile. (No
      // Catch2 assertion off the main thread: it is not thread-safe.)
      slept = executor->io().scheduler.sleep_for(100ms).has_value();
      ticks_while_working = main_ticks - before;
    });
    REQUIRE(ran);
    done = true;
  });
  CHECK(work_id != main_id);
  CHECK(work_name == "hastd:shared");
  CHECK(slept);
  CHECK(ticks_while_working >= 5);
  executor->stop();
}

TEST_CASE("ThreadHost: a resource's thread blocked in the kernel stalls neither the main "
          "thread nor another resource",
          "[resource_thread]") {
  Fixture f;
  auto blocked = f.host.create(resource_named("blocked"));
  auto other = f.host.create(resource_named("other"));
  REQUIRE(blocked);
  REQUIRE(other);
  REQUIRE(f.host.launch());
  std::atomic<bool> blocking{false};
  int main_ticks_while_blocked = 0;
  bool other_answered_while_blocked = false;
  f.loop.spawn("blocker", [&] {
    REQUIRE((*blocked)->run([&] {
      // A synchronous call, as a BLKDISCARD ioctl on a slow device: the whole thread
      // waits, not just this fiber.
      blocking = true;
      std::this_thread::sleep_for(400ms);
      blocking = false;
    }));
  });
  f.loop.run([&] {
    while (!blocking)
      REQUIRE(f.loop.scheduler.sleep_for(1ms));
    auto started = f.loop.clock.now();
    REQUIRE((*other)->run([] {}));
    other_answered_while_blocked = blocking;
    while (blocking) {
      main_ticks_while_blocked++;
      REQUIRE(f.loop.scheduler.sleep_for(10ms));
    }
    CHECK(f.loop.clock.now() - started >= 200ms);
  });
  CHECK(other_answered_while_blocked);
  CHECK(main_ticks_while_blocked >= 10);
  (*blocked)->stop();
  (*other)->stop();
}

TEST_CASE("ThreadHost: thread names are cut to the kernel's 15 characters", "[resource_thread]") {
  CHECK(hast::real::resource_thread_name("shared") == "hastd:shared");
  CHECK(hast::real::resource_thread_name("a_very_long_resource") == "hastd:a_very_lo");
}

TEST_CASE("ThreadHost: a cancelled caller cancels the work and waits for it", "[resource_thread]") {
  Fixture f;
  auto executor = f.launched("r0");
  std::optional<hast::Result<void>> slept;
  std::optional<hast::Result<void>> ran;
  hast::fiber::FiberId caller = 0;
  f.loop.spawn("caller", [&] {
    caller = f.loop.scheduler.current();
    ran.emplace(executor->run([&] { slept.emplace(executor->io().scheduler.sleep_for(10s)); }));
  });
  f.loop.run([&] {
    REQUIRE(f.loop.scheduler.sleep_for(50ms));
    auto started = f.loop.clock.now();
    f.loop.scheduler.cancel(caller);
    while (!ran.has_value())
      REQUIRE(f.loop.scheduler.sleep_for(5ms));
    CHECK(f.loop.clock.now() - started < 5s);
  });
  REQUIRE(slept.has_value());
  CHECK(!slept->has_value());
  CHECK(slept->error().code() == Errc::cancelled);
  // The work itself returned: the call completed.
  CHECK(ran->has_value());
  executor->stop();
}

TEST_CASE("ThreadHost: an accepted connection moves to the resource's ring",
          "[resource_thread]") {
  Fixture f;
  auto executor = f.launched("r1");
  hast::real::RealNetwork network(f.loop.ring);
  f.loop.run([&] {
    auto address = hast::parse_address("tcp://127.0.0.1", 0);
    REQUIRE(address);
    auto listener = network.listen(*address);
    REQUIRE(listener);
    auto client = network.connect((*listener)->address(), std::nullopt, f.loop.after(5s));
    REQUIRE(client);
    auto accepted = (*listener)->accept(f.loop.after(5s));
    REQUIRE(accepted);
    // The first bytes are read on the main ring, as admission reads the first message.
    std::byte out[8];
    std::memcpy(out, "ab123456", 8);
    REQUIRE((*client)->send(out, f.loop.after(5s)));
    std::byte head[2];
    REQUIRE((*accepted)->recv_exact(head, f.loop.after(5s)));
    std::shared_ptr<hast::Connection> main_side = std::move(*accepted);
    auto moved = executor->adopt(main_side);
    REQUIRE(moved);
    CHECK((*moved)->peer_address() == (*client)->local_address());
    // The old handle is closed; the new one reads the rest on the resource's thread and
    // answers.
    std::byte more[1];
    CHECK(main_side->recv_exact(more, f.loop.after(1s)).error().code() == Errc::disconnected);
    std::string rest;
    bool answered = false;
    auto ran = executor->run([&] {
      Instant deadline = executor->io().clock.now() + 5s;
      std::byte tail[6];
      if (!(*moved)->recv_exact(tail, deadline)) return;
      rest.assign(reinterpret_cast<const char*>(tail), 6);
      std::byte reply[2];
      std::memcpy(reply, "ok", 2);
      answered = (*moved)->send(reply, deadline).has_value();
      (*moved)->close();
    });
    REQUIRE(ran);
    CHECK(rest == "123456");
    CHECK(answered);
    std::byte reply[2];
    REQUIRE((*client)->recv_exact(reply, f.loop.after(5s)));
    CHECK(std::memcmp(reply, "ok", 2) == 0);
    (*listener)->close();
  });
  executor->stop();
}

TEST_CASE("ThreadHost: stop joins the thread; later calls fail", "[resource_thread]") {
  Fixture f;
  auto executor = f.host.create(resource_named("r2"));
  REQUIRE(executor);
  // Not launched yet: calls fail, stop needs no thread.
  f.loop.run([&] {
    auto early = (*executor)->run([] {});
    REQUIRE(!early);
    CHECK(early.error().code() == Errc::cancelled);
  });
  REQUIRE(f.host.launch());
  bool ran_once = false;
  f.loop.run([&] { REQUIRE((*executor)->run([&] { ran_once = true; })); });
  CHECK(ran_once);
  (*executor)->stop();
  (*executor)->stop();  // idempotent
  f.loop.run([&] {
    bool ran_late = false;
    auto late = (*executor)->run([&] { ran_late = true; });
    CHECK(!ran_late);
    REQUIRE(!late);
    CHECK(late.error().code() == Errc::cancelled);
  });
  // An executor created after launch() starts at once.
  auto later = f.host.create(resource_named("r3"));
  REQUIRE(later);
  std::string name;
  f.loop.run([&] { REQUIRE((*later)->run([&] { name = current_thread_name(); })); });
  CHECK(name == "hastd:r3");
}

}  // namespace
