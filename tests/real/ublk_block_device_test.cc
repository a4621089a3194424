// UblkBlockDevice (`frontend ublk [LINK]`) against the fake driver: the takeover decision
// table, the state file, START_DEV in the background with the link made after it, the
// teardown order, recovery across a simulated kill -9 and restart, stale and foreign ids.
//
// Method: one FakeKernel (tests/real/ublk_fake_kernel.h) outlives the devices made on it,
// as the driver outlives hastd; a "restart" is a new UblkBlockDevice with the same state
// file after crash() and test_abandon(). Links and state files go to a temporary
// directory; the link's target is only a name (/dev/ublkbN need not exist).
#include <unistd.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "real/log.h"
#include "real/ublk/ublk_block_device.h"
#include "real/ublk/ublk_takeover.h"
#include "tests/real/ublk_fake_kernel.h"
#include "tests/support/real_loop.h"

namespace hast::real::ublk {
namespace {

using fake::FakeKernel;
using fake::test_dev_id;
using fake::test_pid;
namespace fs = std::filesystem;

constexpr std::uint64_t device_size = 64 * 1024 * 1024;

struct TempDir {
  TempDir() {
    char pattern[] = "/tmp/hast-ublk-test.XXXXXX";
    REQUIRE(::mkdtemp(pattern) != nullptr);
    path = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
  std::string path;
};

std::string link_target(const std::string& link) {
  std::error_code error;
  auto target = fs::read_symlink(link, error);
  return error ? std::string() : target.string();
}

std::string file_text(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A device on the shared fake kernel, with a core fiber that answers every request.
struct Node {
  Node(test::RealLoop& loop, Log& log, std::shared_ptr<FakeKernel> kernel, const TempDir& dir,
       std::vector<std::int32_t> live_pids = {})
      : loop_(loop) {
    UblkDeviceOptions options;
    options.server.name = "shared";
    options.server.size = device_size;
    options.server.queue_depth = 2;
    options.server.pid = test_pid;
    options.state_path = dir.path + "/shared.ublk";
    options.link = dir.path + "/dev/hast/shared";
    options.process_alive = [live_pids](std::int32_t pid) {
      return std::find(live_pids.begin(), live_pids.end(), pid) != live_pids.end();
    };
    device = std::make_unique<UblkBlockDevice>(loop.scheduler, log, std::move(kernel), options);
  }
  Result<void> open() {
    auto opened = device->open();
    if (opened) {
      loop_.spawn("core", [this] {
        while (auto request = device->next_request()) {
          if (request->op == BlockOp::read)
            std::fill(request->data.begin(), request->data.end(), std::byte{0});
          device->complete(*request, ok());
        }
      });
    }
    return opened;
  }

  test::RealLoop& loop_;
  std::unique_ptr<UblkBlockDevice> device;
};

struct Fixture {
  test::RealLoop loop;
  StderrLog log{"ublk-block-device-test", LogLevel::warning};
  std::shared_ptr<FakeKernel> kernel = std::make_shared<FakeKernel>(loop.scheduler);
  TempDir dir;
  std::string state_path = dir.path + "/shared.ublk";
  std::string link = dir.path + "/dev/hast/shared";

  // A device of ours (stamped "shared", user recovery) in `state`, its id persisted in the
  // state file: what an earlier hastd left behind.
  void our_device(std::uint16_t state) {
    kernel->quiesced_device(1, 2, flag_user_recovery);
    kernel->device.ublksrv_flags = owner_stamp("shared");
    kernel->device.state = state;
    REQUIRE(write_dev_id(state_path, test_dev_id));
  }
};

// ---- The decision ----

TakeoverFacts ours(std::uint16_t state, std::uint64_t flags) {
  TakeoverFacts facts;
  facts.persisted = true;
  facts.stamp = owner_stamp("shared");
  facts.size = device_size;
  facts.sector_size = 512;
  facts.info.ublksrv_flags = facts.stamp;
  facts.info.flags = flags;
  facts.info.state = state;
  facts.params.basic.dev_sectors = device_size >> 9;
  facts.params.basic.logical_bs_shift = 9;
  return facts;
}

TEST_CASE("ublk takeover: every row of the decision table", "[real][ublk]") {
  const std::uint64_t recovery = flag_user_recovery;
  auto facts = ours(state_quiesced, recovery);
  CHECK(decide_takeover(facts) == Takeover::recover);
  facts.info.state = state_fail_io;
  CHECK(decide_takeover(facts) == Takeover::recover);
  // No state file: add.
  facts = ours(state_quiesced, recovery);
  facts.persisted = false;
  CHECK(decide_takeover(facts) == Takeover::add);
  // The device is gone.
  facts = ours(state_quiesced, recovery);
  facts.info_result = -ENOENT;
  CHECK(decide_takeover(facts) == Takeover::add);
  // The kernel answers with another error: refuse.
  facts.info_result = -EPERM;
  CHECK(decide_takeover(facts) == Takeover::refuse);
  // Another program's device under the same id.
  facts = ours(state_quiesced, recovery);
  facts.info.ublksrv_flags = owner_stamp("other");
  CHECK(decide_takeover(facts) == Takeover::foreign);
  CHECK_FALSE(recovery_possible(facts));
  // Live and served by a live process: refuse; its server gone: replace.
  facts = ours(state_live, recovery);
  facts.server_alive = true;
  CHECK(decide_takeover(facts) == Takeover::refuse);
  facts.server_alive = false;
  CHECK(decide_takeover(facts) == Takeover::replace);
  // Dead, or without user recovery, or another geometry: replace.
  CHECK(decide_takeover(ours(state_dead, recovery)) == Takeover::replace);
  CHECK(decide_takeover(ours(state_quiesced, 0)) == Takeover::replace);
  facts = ours(state_quiesced, recovery);
  facts.params.basic.dev_sectors--;
  CHECK(decide_takeover(facts) == Takeover::replace);
  facts = ours(state_quiesced, recovery);
  facts.sector_size = 4096;
  CHECK(decide_takeover(facts) == Takeover::replace);
  facts = ours(state_quiesced, recovery);
  facts.params_result = -EINVAL;
  CHECK(decide_takeover(facts) == Takeover::replace);
  // Stamps differ per resource and are never 0.
  CHECK(owner_stamp("shared") != owner_stamp("shared2"));
  CHECK(owner_stamp("") != 0);
}

TEST_CASE("ublk takeover: the state file holds the id, or says what is wrong", "[real][ublk]") {
  TempDir dir;
  std::string path = dir.path + "/r.ublk";
  auto absent = read_dev_id(path);
  REQUIRE(absent);
  CHECK_FALSE(absent->has_value());
  REQUIRE(write_dev_id(path, 12));
  CHECK(file_text(path) == "12\n");
  CHECK(read_dev_id(path)->value() == 12);
  std::ofstream(path) << "12x\n";
  auto bad = read_dev_id(path);
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message().find(path) != std::string::npos);
  std::ofstream(path) << "";
  CHECK_FALSE(read_dev_id(path));
  REQUIRE(remove_dev_id(path));
  REQUIRE(remove_dev_id(path));  // absent is fine
  CHECK_FALSE(fs::exists(path));
  CHECK_FALSE(write_dev_id(dir.path + "/missing/r.ublk", 1));
}

// ---- The device ----

TEST_CASE(
    "ublk device: open returns before START_DEV, which waits for the partition scan; "
    "the link follows it",
    "[real][ublk]") {
  Fixture f;
  Node node(f.loop, f.log, f.kernel, f.dir);
  bool link_before_start_ended = true;
  f.kernel->during_start = [&] {
    // The partition scan: a read the core must serve before START_DEV returns.
    f.kernel->issue(0, 1, op_read, 0, 8);
    f.kernel->wait_commits(1);
    link_before_start_ended = fs::is_symlink(f.link);
  };
  f.loop.run([&] {
    REQUIRE(node.open());
    // open() returned: the state file is written, START_DEV is still to come.
    CHECK(node.device->server().state() == UblkState::starting);
    CHECK(file_text(f.state_path) == "7\n");
    CHECK_FALSE(fs::is_symlink(f.link));
    REQUIRE(node.device->wait_linked());
    CHECK(f.kernel->commits.at(0).result == 4096);
    CHECK_FALSE(link_before_start_ended);
    CHECK(link_target(f.link) == "/dev/ublkb7");
    CHECK(node.device->takeover() == Takeover::add);
    CHECK(f.kernel->device.ublksrv_flags == owner_stamp("shared"));
    node.device->close();
  });
}

TEST_CASE("ublk device: close removes the link, then STOP_DEV, DEL_DEV, then the state file",
          "[real][ublk]") {
  Fixture f;
  Node node(f.loop, f.log, f.kernel, f.dir);
  bool link_at_stop = true;
  bool state_at_stop = false;
  f.kernel->on_stop = [&] {
    link_at_stop = fs::is_symlink(f.link);
    state_at_stop = fs::exists(f.state_path);
  };
  f.loop.run([&] {
    REQUIRE(node.open());
    REQUIRE(node.device->wait_linked());
    f.kernel->log.clear();
    node.device->close();
    std::vector<std::string> expected{"STOP_DEV", "CLOSE_QUEUES", "DEL_DEV"};
    CHECK(f.kernel->log == expected);
    CHECK_FALSE(link_at_stop);
    CHECK(state_at_stop);
    CHECK_FALSE(fs::exists(f.link));
    CHECK_FALSE(fs::exists(f.state_path));
    node.device->close();  // idempotent
    CHECK(f.kernel->log == expected);
  });
}

TEST_CASE("ublk device: a link replaced by someone else is left alone at close", "[real][ublk]") {
  Fixture f;
  Node node(f.loop, f.log, f.kernel, f.dir);
  f.loop.run([&] {
    REQUIRE(node.open());
    REQUIRE(node.device->wait_linked());
    fs::remove(f.link);
    fs::create_symlink("/dev/other", f.link);
    node.device->close();
    CHECK(link_target(f.link) == "/dev/other");
  });
}

TEST_CASE(
    "ublk device: after a kill -9 the restarted hastd recovers the device by its "
    "persisted id",
    "[real][ublk]") {
  Fixture f;
  // Both outlive the loop: their core fibers end after the test's.
  Node first(f.loop, f.log, f.kernel, f.dir);
  Node second(f.loop, f.log, f.kernel, f.dir);
  f.loop.run([&] {
    REQUIRE(first.open());
    REQUIRE(first.device->wait_linked());
    // kill -9: the kernel ends the fetches and keeps the device quiesced.
    f.kernel->crash();
    first.device->test_abandon();
    CHECK(f.kernel->device.state == state_quiesced);
    CHECK(file_text(f.state_path) == "7\n");
    CHECK(link_target(f.link) == "/dev/ublkb7");
    CHECK(f.kernel->count("STOP_DEV") == 0);
    CHECK(f.kernel->count("DEL_DEV") == 0);
    // The restarted hastd.
    f.kernel->log.clear();
    REQUIRE(second.open());
    REQUIRE(second.device->wait_linked());
    CHECK(second.device->takeover() == Takeover::recover);
    // The takeover's questions, then the server's own check and the recovery.
    std::vector<std::string> expected{
        "GET_DEV_INFO", "GET_PARAMS", "GET_DEV_INFO", "START_USER_RECOVERY",
        "OPEN_QUEUES",  "FETCH 0 0",  "FETCH 0 1",    "END_USER_RECOVERY 4242"};
    CHECK(f.kernel->log == expected);
    CHECK(second.device->server().state() == UblkState::live);
    CHECK(link_target(f.link) == "/dev/ublkb7");
    // The I/O the kernel held is reissued to the new server and answered.
    f.kernel->issue(0, 0, op_write, 0, 8, std::vector<std::byte>(4096, std::byte{1}));
    f.kernel->wait_commits(1);
    CHECK(f.kernel->commits.back().result == 4096);
    second.device->close();
    CHECK(f.kernel->log.back() == "DEL_DEV");
    CHECK_FALSE(fs::exists(f.state_path));
  });
}

TEST_CASE("ublk device: a stale device of ours is stopped and deleted, a new one added",
          "[real][ublk]") {
  Fixture f;
  // A device of ours that cannot be recovered: dead (or added without recovery).
  f.our_device(state_dead);
  f.kernel->next_dev_id = 8;
  Node node(f.loop, f.log, f.kernel, f.dir);
  f.loop.run([&] {
    REQUIRE(node.open());
    REQUIRE(node.device->wait_linked());
    CHECK(node.device->takeover() == Takeover::replace);
    std::vector<std::string> head(f.kernel->log.begin(), f.kernel->log.begin() + 4);
    CHECK(head == std::vector<std::string>{"GET_DEV_INFO", "STOP_DEV", "DEL_DEV", "ADD_DEV"});
    CHECK(file_text(f.state_path) == "8\n");
    CHECK(link_target(f.link) == "/dev/ublkb8");
    node.device->close();
  });
}

TEST_CASE("ublk device: a persisted id that is gone or not ours is not touched", "[real][ublk]") {
  Fixture f;
  f.kernel->next_dev_id = 9;
  SECTION("gone") {
    REQUIRE(write_dev_id(f.state_path, 3));
  }
  SECTION("another program's device") {
    f.kernel->quiesced_device(1, 2, flag_user_recovery);
    f.kernel->device.ublksrv_flags = 0x1234;
    REQUIRE(write_dev_id(f.state_path, test_dev_id));
  }
  SECTION("an unreadable state file") {
    std::ofstream(f.state_path) << "garbage\n";
  }
  Node node(f.loop, f.log, f.kernel, f.dir);
  f.loop.run([&] {
    REQUIRE(node.open());
    REQUIRE(node.device->wait_linked());
    CHECK(f.kernel->count("STOP_DEV") == 0);
    CHECK(f.kernel->count("DEL_DEV") == 0);
    CHECK(f.kernel->count("START_USER_RECOVERY") == 0);
    CHECK(f.kernel->count("ADD_DEV") == 1);
    CHECK(file_text(f.state_path) == "9\n");
    node.device->close();
  });
}

TEST_CASE("ublk device: a device served by a live process is refused, nothing touched",
          "[real][ublk]") {
  Fixture f;
  f.our_device(state_live);
  f.kernel->device.ublksrv_pid = 777;
  Node node(f.loop, f.log, f.kernel, f.dir, {777});
  f.loop.run([&] {
    auto opened = node.open();
    REQUIRE_FALSE(opened);
    CHECK(opened.error().code() == Errc::busy);
    CHECK(opened.error().message().find("777") != std::string::npos);
    CHECK(f.kernel->log == std::vector<std::string>{"GET_DEV_INFO"});
    CHECK(file_text(f.state_path) == "7\n");
    node.device->close();
  });
}

TEST_CASE(
    "ublk device: a failed START_DEV deletes the device, its state file and makes no "
    "link",
    "[real][ublk]") {
  Fixture f;
  f.kernel->fail["START_DEV"] = EINVAL;
  Node node(f.loop, f.log, f.kernel, f.dir);
  f.loop.run([&] {
    REQUIRE(node.open());
    auto linked = node.device->wait_linked();
    REQUIRE_FALSE(linked);
    CHECK(linked.error().message().find("START_DEV") != std::string::npos);
    CHECK_FALSE(fs::exists(f.link));
    CHECK(f.kernel->log.back() == "DEL_DEV");
    CHECK_FALSE(node.device->next_request());
    node.device->close();
    CHECK_FALSE(fs::exists(f.state_path));
    CHECK(f.kernel->count("DEL_DEV") == 1);
  });
}

}  // namespace
}  // namespace hast::real::ublk
