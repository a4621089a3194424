// UblkServer's logic against a fake ublk driver (no /dev/ublk-control on the test machines):
// the start-up and recovery command sequences, every op's mapping onto BlockRequests,
// splitting, FUA, errors, close() with requests in flight, the queue depth.
//
// Method: FakeKernel implements UblkKernel in memory. It logs every command in order,
// keeps one slot per (queue, tag), and the test plays the block layer: issue() hands an
// armed tag a request (copying a WRITE's data into the tag's buffer, as the driver does),
// and commits are recorded with the bytes a READ left in the buffer. A core fiber takes
// the server's BlockRequests; the test completes them by hand.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "real/log.h"
#include "real/ublk/ublk_server.h"
#include "tests/real/ublk_fake_kernel.h"
#include "tests/support/real_loop.h"

namespace hast::real::ublk {
namespace {

using fake::Commit;
using fake::FakeKernel;
using fake::test_dev_id;
using fake::test_pid;

std::vector<std::byte> pattern(std::size_t size, std::uint8_t seed) {
  std::vector<std::byte> bytes(size);
  for (std::size_t i = 0; i < size; i++)
    bytes[i] = static_cast<std::byte>(seed + i * 7);
  return bytes;
}

UblkServerOptions small_options() {
  UblkServerOptions o;
  o.name = "r0";
  o.size = 64 * 1024 * 1024;
  o.queues = 1;
  o.queue_depth = 4;
  o.io_bytes_max = 512 * 1024;
  o.part_bytes_max = 128 * 1024;
  o.discard_part_bytes_max = 1024 * 1024;
  o.pid = test_pid;
  return o;
}

// A server on the fake kernel and a core fiber that collects its BlockRequests.
struct Harness {
  test::RealLoop loop;
  StderrLog log{"ublk-test", LogLevel::warning};
  FakeKernel kernel{loop.scheduler};
  std::unique_ptr<UblkServer> server;
  std::vector<BlockRequest> taken;  // by the core, in order
  std::size_t take_max = SIZE_MAX;  // the core stops taking at this many
  std::unique_ptr<fiber::WaitQueue> take_more = std::make_unique<fiber::WaitQueue>(loop.scheduler);
  bool core_done = false;

  // start(), the core fiber, then (when `wait`) the background START_DEV's result.
  Result<void> start(UblkServerOptions options = small_options(), bool wait = true) {
    server = std::make_unique<UblkServer>(loop.scheduler, kernel, log, options);
    auto started = server->start();
    if (started) {
      loop.spawn("core", [this] {
        while (true) {
          while (taken.size() >= take_max)
            REQUIRE(take_more->wait(std::nullopt) == fiber::WakeReason::woken);
          auto request = server->next_request();
          if (!request) break;
          taken.push_back(*request);
        }
        core_done = true;
      });
      if (wait) return server->wait_started();
    }
    return started;
  }
  // Lets the other fibers run until `done` holds (everything here is in memory).
  template <typename Pred>
  void settle(Pred done) {
    for (int i = 0; i < 1000 && !done(); i++)
      loop.scheduler.yield();
    REQUIRE(done());
  }
  void settle_taken(std::size_t count) {
    settle([&] { return taken.size() >= count; });
  }
  void settle_commits(std::size_t count) {
    settle([&] { return kernel.commits.size() >= count; });
  }
  void complete_all(std::size_t from = 0) {
    for (std::size_t i = from; i < taken.size(); i++)
      server->complete(taken[i], ok());
  }
  void close() {
    server->close();
    take_max = SIZE_MAX;
    take_more->wake_all();
    settle([&] { return core_done; });
  }
  // START_DEV reads the partition table (8 sectors at 0) on queue 0, `tag`, and waits for
  // the answer before it returns, as the driver's does.
  void scan_during_start(std::uint16_t tag) {
    kernel.during_start = [this, tag] {
      kernel.issue(0, tag, op_read, 0, 8);
      kernel.wait_commits(1);
    };
  }
};

TEST_CASE("ublk: a fresh device is added, set up, fetched, then started", "[real][ublk]") {
  Harness h;
  h.loop.run([&] {
    REQUIRE(h.start());
    CHECK(h.server->state() == UblkState::live);
    CHECK(h.server->dev_id() == test_dev_id);
    std::vector<std::string> expected{"ADD_DEV",   "SET_PARAMS", "OPEN_QUEUES", "FETCH 0 0",
                                      "FETCH 0 1", "FETCH 0 2",  "FETCH 0 3",   "START_DEV 4242"};
    CHECK(h.kernel.log == expected);
    CHECK((h.kernel.device.flags & flag_user_recovery) != 0);
    CHECK((h.kernel.device.flags & flag_cmd_ioctl_encode) != 0);
    CHECK(h.kernel.params.basic.dev_sectors == 64 * 1024 * 2);
    CHECK(h.kernel.params.basic.logical_bs_shift == 9);
    CHECK(h.kernel.params.basic.max_sectors == 1024);
    CHECK((h.kernel.params.basic.attrs & UBLK_ATTR_VOLATILE_CACHE) != 0);
    CHECK((h.kernel.params.basic.attrs & UBLK_ATTR_FUA) != 0);
    CHECK(h.kernel.params.types == (UBLK_PARAM_TYPE_BASIC | UBLK_PARAM_TYPE_DISCARD));
    h.close();
    CHECK(h.kernel.log.back() == "DEL_DEV");
    CHECK(h.server->state() == UblkState::closed);
  });
}

TEST_CASE("ublk: READ and WRITE carry their data both ways", "[real][ublk]") {
  Harness h;
  h.loop.run([&] {
    REQUIRE(h.start());
    auto written = pattern(8192, 3);
    h.kernel.issue(0, 0, op_write, 16, 16, written);
    h.kernel.issue(0, 1, op_read, 32, 8);
    h.settle_taken(2);
    const BlockRequest& write = h.taken[0];
    CHECK(write.op == BlockOp::write);
    CHECK(write.offset == 16 * 512);
    CHECK(write.length == 8192);
    CHECK(write.fua == Fua::no);
    CHECK(std::equal(write.data.begin(), write.data.end(), written.begin(), written.end()));
    const BlockRequest& read = h.taken[1];
    CHECK(read.op == BlockOp::read);
    CHECK(read.offset == 32 * 512);
    REQUIRE(read.data.size() == 4096);
    auto read_bytes = pattern(4096, 9);
    std::copy(read_bytes.begin(), read_bytes.end(), read.data.begin());
    h.complete_all();
    h.settle_commits(2);
    CHECK(h.kernel.commits[0].result == 8192);
    CHECK(h.kernel.commits[1].result == 4096);
    CHECK(h.kernel.commits[1].data == read_bytes);
    CHECK(h.kernel.armed(0, 0));  // COMMIT_AND_FETCH re-armed the tags
    CHECK(h.kernel.armed(0, 1));
    h.close();
  });
}

TEST_CASE("ublk: FLUSH, DISCARD, WRITE_ZEROES and FUA map onto the core's ops", "[real][ublk]") {
  Harness h;
  h.loop.run([&] {
    REQUIRE(h.start());
    h.kernel.issue(0, 0, op_flush, 0, 0);
    h.kernel.issue(0, 1, op_discard, 8, 8);
    h.kernel.issue(0, 2, op_write_zeroes | io_flag_fua, 64, 8);
    h.kernel.issue(0, 3, op_write | io_flag_fua, 0, 1, pattern(512, 1));
    h.settle_taken(4);
    CHECK(h.taken[0].op == BlockOp::flush);
    CHECK(h.taken[0].data.empty());
    CHECK(h.taken[1].op == BlockOp::discard);
    CHECK(h.taken[1].length == 4096);
    CHECK(h.taken[1].data.empty());
    CHECK(h.taken[2].op == BlockOp::write_zeroes);
    CHECK(h.taken[2].fua == Fua::yes);
    CHECK(h.taken[2].data.empty());
    CHECK(h.taken[3].op == BlockOp::write);
    CHECK(h.taken[3].fua == Fua::yes);
    h.complete_all();
    h.settle_commits(4);
    CHECK(h.kernel.commits[0].result == 0);
    CHECK(h.kernel.commits[1].result == 4096);
    CHECK(h.kernel.commits[2].result == 4096);
    CHECK(h.kernel.commits[3].result == 512);
    CHECK(h.server->stats().fua_writes == 1);
    CHECK(h.server->stats().flushes == 1);
    h.close();
  });
}

TEST_CASE("ublk: a DISCARD with FUA is followed by a flush before its answer", "[real][ublk]") {
  Harness h;
  h.loop.run([&] {
    REQUIRE(h.start());
    h.kernel.issue(0, 0, op_discard | io_flag_fua, 0, 16);
    h.settle_taken(1);
    CHECK(h.taken[0].op == BlockOp::discard);
    h.complete_all();
    h.settle_taken(2);
    CHECK(h.taken[1].op == BlockOp::flush);
    CHECK(h.kernel.commits.empty());
    h.complete_all(1);
    h.settle_commits(1);
    CHECK(h.kernel.commits[0].result == 8192);
    h.close();
  });
}

TEST_CASE("ublk: long requests are split into parts of at most the core's size", "[real][ublk]") {
  Harness h;
  h.loop.run([&] {
    REQUIRE(h.start());
    auto written = pattern(300 * 1024, 5);
    h.kernel.issue(0, 0, op_write | io_flag_fua, 2048, 600, written);
    h.kernel.issue(0, 1, op_discard, 0, 5000);  // 2.5 MB in parts of 1 MiB
    h.settle_taken(6);
    std::uint64_t offset = 2048 * 512;
    std::vector<std::uint64_t> lengths{128 * 1024, 128 * 1024, 44 * 1024};
    for (std::size_t i = 0; i < 3; i++) {
      CHECK(h.taken[i].op == BlockOp::write);
      CHECK(h.taken[i].offset == offset);
      CHECK(h.taken[i].length == lengths[i]);
      CHECK(h.taken[i].fua == Fua::yes);
      auto expected = std::span(written).subspan(offset - 2048 * 512, lengths[i]);
      CHECK(std::equal(h.taken[i].data.begin(), h.taken[i].data.end(), expected.begin()));
      offset += lengths[i];
    }
    CHECK(h.taken[3].length == 1024 * 1024);
    CHECK(h.taken[5].length == 5000 * 512 - 2 * 1024 * 1024);
    // The answer waits for the last part.
    h.server->complete(h.taken[0], ok());
    h.server->complete(h.taken[1], ok());
    h.settle([&] { return h.server->parts_outstanding() == 4; });
    CHECK(h.kernel.commits.empty());
    h.complete_all(2);
    h.settle_commits(2);
    CHECK(h.kernel.commits[0].result == 300 * 1024);
    CHECK(h.kernel.commits[1].result == 5000 * 512);
    CHECK(h.server->stats().parts == 6);
    h.close();
  });
}

TEST_CASE("ublk: errors are committed as -errno, never as success", "[real][ublk]") {
  Harness h;
  h.loop.run([&] {
    REQUIRE(h.start());
    h.kernel.issue(0, 0, op_write, 0, 600, pattern(300 * 1024, 1));
    h.kernel.issue(0, 1, op_read, 0, 8);
    h.settle_taken(4);
    // One failed part among successes fails the whole WRITE.
    h.server->complete(h.taken[0], ok());
    h.server->complete(h.taken[1], fail(Errc::disconnected, "peer lost"));
    h.server->complete(h.taken[2], ok());
    h.server->complete(h.taken[3], fail(Errc::invalid_argument, "bad"));
    h.settle_commits(2);
    CHECK(h.kernel.commits[0].result == -EIO);
    CHECK(h.kernel.commits[1].result == -EINVAL);
    // Rejected before the core: unknown op, past the end, empty, longer than the buffer.
    h.kernel.issue(0, 2, op_write_same, 0, 8);
    h.kernel.issue(0, 3, op_read, 64 * 1024 * 2 - 4, 8);
    h.settle_commits(4);
    h.kernel.issue(0, 2, op_read, 0, 0);
    h.kernel.issue(0, 3, op_write, 0, 2048);
    h.settle_commits(6);
    CHECK(h.kernel.commits[2].result == -EOPNOTSUPP);
    CHECK(h.kernel.commits[3].result == -EINVAL);
    CHECK(h.kernel.commits[4].result == -EINVAL);
    CHECK(h.kernel.commits[5].result == -EINVAL);
    CHECK(h.taken.size() == 4);
    CHECK(h.server->stats().rejected == 4);
    CHECK(h.server->stats().failed == 2);
    h.close();
  });
}

TEST_CASE("ublk: requests must be aligned to the provider's sector", "[real][ublk]") {
  Harness h;
  auto options = small_options();
  options.sector_size = 4096;
  h.loop.run([&] {
    REQUIRE(h.start(options));
    CHECK(h.kernel.params.basic.logical_bs_shift == 12);
    h.kernel.issue(0, 0, op_read, 1, 8);
    h.kernel.issue(0, 1, op_read, 8, 8);
    h.settle_taken(1);
    h.complete_all();
    h.settle_commits(2);
    std::vector<std::int32_t> results{h.kernel.commits[0].result, h.kernel.commits[1].result};
    std::sort(results.begin(), results.end());
    CHECK(results == std::vector<std::int32_t>{-EINVAL, 4096});
    h.close();
  });
}

TEST_CASE("ublk: close fails every request in flight with -EIO and deletes the device",
          "[real][ublk]") {
  Harness h;
  auto options = small_options();
  options.queue_capacity = 1;
  h.loop.run([&] {
    h.take_max = 2;
    REQUIRE(h.start(options));
    h.kernel.issue(0, 0, op_write, 0, 8, pattern(4096, 1));  // taken by the core
    h.kernel.issue(0, 1, op_read, 0, 512);                   // 2 parts: 1 taken, 1 queued
    h.kernel.issue(0, 2, op_read, 0, 8);                     // waits for room in the queue
    h.settle_taken(2);
    h.settle([&] { return h.server->parts_outstanding() == 4; });
    h.kernel.log.clear();
    // A request that arrives after close() began, before STOP_DEV: answered -EIO at once.
    h.kernel.on_stop = [&] { h.kernel.issue(0, 3, op_write, 0, 8, pattern(4096, 3)); };
    h.close();
    REQUIRE(h.kernel.commits.size() == 4);
    for (const Commit& commit : h.kernel.commits)
      CHECK(commit.result == -EIO);
    CHECK(h.kernel.commits[3].tag == 3);
    CHECK(h.taken.size() == 2);
    CHECK(h.kernel.count("STOP_DEV") == 1);
    CHECK(h.kernel.log.back() == "DEL_DEV");
    CHECK(h.kernel.count("CLOSE_QUEUES") == 1);
    CHECK(h.server->tags_serving() == 0);
    CHECK_FALSE(h.server->next_request());
    // The core answers late: complete() stays valid and changes nothing.
    CHECK(h.server->parts_outstanding() == 2);
    h.complete_all();
    CHECK(h.server->parts_outstanding() == 0);
    CHECK(h.kernel.commits.size() == 4);
    CHECK(h.server->stats().failed_at_close == 4);
  });
}

TEST_CASE("ublk: a restarted server recovers a quiesced device", "[real][ublk]") {
  Harness h;
  h.kernel.quiesced_device(2, 2, flag_user_recovery | flag_cmd_ioctl_encode);
  auto options = small_options();
  options.recover_dev_id = test_dev_id;
  h.loop.run([&] {
    REQUIRE(h.start(options));
    CHECK(h.server->state() == UblkState::live);
    std::vector<std::string> expected{
        "GET_DEV_INFO", "START_USER_RECOVERY", "OPEN_QUEUES", "FETCH 0 0",
        "FETCH 0 1",    "FETCH 1 0",           "FETCH 1 1",   "END_USER_RECOVERY 4242"};
    CHECK(h.kernel.log == expected);
    CHECK(h.kernel.count("ADD_DEV") == 0);
    CHECK(h.kernel.count("SET_PARAMS") == 0);
    // The kernel reissues the requests it held; they are served as usual.
    h.kernel.issue(1, 1, op_write, 0, 8, pattern(4096, 2));
    h.settle_taken(1);
    h.complete_all();
    h.settle_commits(1);
    CHECK(h.kernel.commits[0].queue == 1);
    CHECK(h.kernel.commits[0].result == 4096);
    h.close();
  });
}

TEST_CASE("ublk: recovery is refused for a device without it or still served", "[real][ublk]") {
  auto options = small_options();
  options.recover_dev_id = test_dev_id;
  SECTION("no UBLK_F_USER_RECOVERY") {
    Harness h;
    h.kernel.quiesced_device(1, 2, flag_cmd_ioctl_encode);
    h.loop.run([&] {
      auto started = h.start(options);
      REQUIRE_FALSE(started);
      CHECK(started.error().code() == Errc::unsupported);
    });
    CHECK(h.kernel.count("START_USER_RECOVERY") == 0);
    CHECK(h.kernel.count("DEL_DEV") == 0);
    CHECK(h.server->state() == UblkState::closed);
  }
  SECTION("live") {
    Harness h;
    h.kernel.quiesced_device(1, 2, flag_user_recovery);
    h.kernel.device.state = state_live;
    h.loop.run([&] {
      auto started = h.start(options);
      REQUIRE_FALSE(started);
      CHECK(started.error().code() == Errc::busy);
    });
  }
  SECTION("START_USER_RECOVERY fails") {
    Harness h;
    h.kernel.quiesced_device(1, 2, flag_user_recovery);
    h.kernel.fail["START_USER_RECOVERY"] = EBUSY;
    h.loop.run([&] { CHECK(h.start(options).error().code() == Errc::busy); });
    CHECK(h.kernel.count("FETCH 0 0") == 0);
  }
}

TEST_CASE("ublk: a failed START_DEV stops the tags and deletes the device", "[real][ublk]") {
  Harness h;
  h.kernel.fail["START_DEV"] = EPERM;
  h.loop.run([&] {
    REQUIRE(h.start(small_options(), false));  // START_DEV fails in the background
    auto started = h.server->wait_started();
    REQUIRE_FALSE(started);
    CHECK(started.error().code() == Errc::refused);
    CHECK(h.server->state() == UblkState::closed);
    CHECK(h.server->tags_serving() == 0);
    CHECK(h.kernel.count("STOP_DEV") == 1);
    CHECK(h.kernel.log.back() == "DEL_DEV");
  });
}

TEST_CASE("ublk: a failed ADD_DEV leaves nothing behind", "[real][ublk]") {
  Harness h;
  h.kernel.fail["ADD_DEV"] = EPERM;
  h.loop.run([&] {
    auto started = h.start();
    REQUIRE_FALSE(started);
    CHECK(started.error().code() == Errc::refused);
    CHECK(started.error().message().find("ADD_DEV") != std::string::npos);
    CHECK(h.kernel.log == std::vector<std::string>{"ADD_DEV"});
    CHECK(h.server->state() == UblkState::closed);
    CHECK_FALSE(h.server->next_request());
  });
}

TEST_CASE("ublk: a failed SET_PARAMS deletes the device it added", "[real][ublk]") {
  Harness h;
  h.kernel.fail["SET_PARAMS"] = EINVAL;
  h.loop.run([&] {
    auto started = h.start();
    REQUIRE_FALSE(started);
    CHECK(started.error().code() == Errc::invalid_argument);
    CHECK(h.kernel.log == std::vector<std::string>{"ADD_DEV", "SET_PARAMS", "DEL_DEV"});
  });
}

TEST_CASE("ublk: the queue depth the kernel grants bounds the requests in flight", "[real][ublk]") {
  Harness h;
  h.kernel.queues_max = 1;
  h.kernel.depth_max = 2;
  auto options = small_options();
  options.queues = 3;
  options.queue_depth = 8;
  h.loop.run([&] {
    REQUIRE(h.start(options));
    CHECK(h.server->info().nr_hw_queues == 1);
    CHECK(h.server->info().queue_depth == 2);
    CHECK(h.kernel.count("FETCH 0 0") == 1);
    CHECK(h.kernel.count("FETCH 0 1") == 1);
    CHECK(h.kernel.count("FETCH 0 2") == 0);
    CHECK(h.server->tags_serving() == 2);
    h.kernel.issue(0, 0, op_read, 0, 8);
    h.kernel.issue(0, 1, op_read, 8, 8);
    h.settle_taken(2);
    // Both tags are busy: the kernel has nowhere to put a third request.
    CHECK_FALSE(h.kernel.armed(0, 0));
    CHECK_FALSE(h.kernel.armed(0, 1));
    h.server->complete(h.taken[0], ok());
    h.settle_commits(1);
    CHECK(h.kernel.armed(0, 0));
    h.kernel.issue(0, 0, op_read, 16, 8);
    h.settle_taken(3);
    h.complete_all(1);
    h.settle_commits(3);
    CHECK(h.kernel.outstanding_max == 2);
    h.close();
  });
}

TEST_CASE("ublk: START_DEV runs in the background while the tags serve the partition scan",
          "[real][ublk]") {
  // The driver's START_DEV reads the partition table through the device before it
  // returns; the core only pulls requests once start() has returned. Were START_DEV sent
  // from start() itself, this would never finish.
  Harness h;
  h.scan_during_start(2);
  h.loop.run([&] {
    REQUIRE(h.start(small_options(), false));
    CHECK(h.server->state() == UblkState::starting);
    CHECK(h.kernel.count("START_DEV 4242") == 0);  // not sent from start()
    h.settle_taken(1);
    CHECK(h.kernel.starting);  // START_DEV waits for the read the core now holds
    CHECK(h.taken[0].op == BlockOp::read);
    h.complete_all();
    REQUIRE(h.server->wait_started());
    CHECK(h.server->state() == UblkState::live);
    CHECK(h.kernel.commits[0].result == 4096);
    CHECK(h.kernel.log.back() == "START_DEV 4242");
    h.close();
  });
}

TEST_CASE("ublk: close during a START_DEV answers its reads -EIO, then stops and deletes",
          "[real][ublk]") {
  Harness h;
  h.scan_during_start(1);
  h.loop.run([&] {
    h.take_max = 0;  // the core never takes the scan's read
    REQUIRE(h.start(small_options(), false));
    h.settle([&] { return h.kernel.starting; });
    h.close();
    CHECK(h.kernel.commits[0].result == -EIO);
    auto started = h.server->wait_started();
    REQUIRE_FALSE(started);
    CHECK(started.error().code() == Errc::cancelled);
    std::vector<std::string> tail(h.kernel.log.end() - 4, h.kernel.log.end());
    CHECK(tail ==
          std::vector<std::string>{"START_DEV 4242", "STOP_DEV", "CLOSE_QUEUES", "DEL_DEV"});
    CHECK(h.server->state() == UblkState::closed);
    CHECK(h.server->device_deleted());
  });
}

}  // namespace
}  // namespace hast::real::ublk
