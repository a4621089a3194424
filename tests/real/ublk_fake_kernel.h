// FakeKernel: UblkKernel in memory, for the tests of UblkServer and UblkBlockDevice (no
// /dev/ublk-control on the test machines).
//
// Method: it logs every command in order, keeps one slot per (queue, tag), and the test
// plays the block layer: issue() hands an armed tag a request (copying a WRITE's data into
// the tag's buffer, as the driver does), and commits are recorded with the bytes a READ
// left in the buffer. Like the driver it keeps one device across server restarts: a test
// "restarts hastd" by making a new server on the same FakeKernel after crash().
// START_DEV and END_USER_RECOVERY run `during_start` (which may suspend, e.g. to wait for
// the partition scan's reads), and STOP_DEV waits for them, as the driver's mutex does.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/fiber/wait_queue.h"
#include "real/ublk/ublk_kernel.h"

namespace hast::real::ublk::fake {

constexpr std::uint32_t test_dev_id = 7;
constexpr std::int32_t test_pid = 4242;

struct Commit {
  std::uint16_t queue = 0;
  std::uint16_t tag = 0;
  std::int32_t result = 0;
  std::vector<std::byte> data;  // a READ's `result` bytes, from the buffer at commit time
};

class FakeKernel final : public UblkKernel {
 public:
  explicit FakeKernel(fiber::Scheduler& scheduler) : scheduler_(scheduler), changed_(scheduler) {}

  // ---- The test's side ----
  std::vector<std::string> log;
  std::vector<Commit> commits;
  std::map<std::string, int> fail;  // command -> errno it fails with
  ublksrv_ctrl_dev_info device{};   // the device the kernel knows
  ublk_params params{};
  std::uint16_t queues_max = 4;  // ADD_DEV clamps nr_hw_queues to this (nr_cpu_ids)
  std::uint16_t depth_max = queue_depth_max;
  bool stopped = false;
  std::size_t outstanding_max = 0;          // most requests handed out and not committed at once
  std::function<void()> on_stop;            // runs as STOP_DEV arrives
  std::function<void()> during_start;       // runs inside START_DEV / END_USER_RECOVERY
  bool present = true;                      // DEL_DEV makes the device go away
  std::uint32_t next_dev_id = test_dev_id;  // ADD_DEV hands out this id, then the next
  bool starting = false;                    // START_DEV / END_USER_RECOVERY in progress
  bool crashed = false;                     // crash(): the server died

  // The server process dies (kill -9): its fetches end, the device is quiesced (user
  // recovery) or stopped, and the commands of the dead server go nowhere.
  void crash() {
    crashed = true;
    device.state = (device.flags & flag_user_recovery) != 0 ? state_quiesced : state_dead;
    for (auto& [key, s] : slots_) {
      if (!s.armed || s.result) continue;
      s.result = io_res_abort;
      s.wait->wake_all();
    }
  }
  // Suspends until `count` commits were recorded; fails after 10 s (nobody serves).
  void wait_commits(std::size_t count) {
    Deadline deadline = deadline_after(scheduler_.clock(), std::chrono::seconds(10));
    while (commits.size() < count)
      REQUIRE(changed_.wait(deadline) == fiber::WakeReason::woken);
  }

  // Hands (queue, tag) a request; the tag must have a fetch outstanding.
  void issue(std::uint16_t queue, std::uint16_t tag, std::uint32_t op_flags, std::uint64_t sector,
             std::uint32_t sectors, std::span<const std::byte> data = {}) {
    Slot& s = slot(queue, tag);
    REQUIRE(s.armed);
    REQUIRE_FALSE(s.result.has_value());
    s.desc = ublksrv_io_desc{op_flags, sectors, sector, 0};
    REQUIRE(data.size() <= s.buffer.size());
    std::copy(data.begin(), data.end(), s.buffer.begin());
    s.result = io_res_ok;
    s.wait->wake_all();
    outstanding_++;
    outstanding_max = std::max(outstanding_max, outstanding_);
  }
  bool armed(std::uint16_t queue, std::uint16_t tag) { return slot(queue, tag).armed; }
  std::size_t count(const std::string& command) const {
    return static_cast<std::size_t>(std::count(log.begin(), log.end(), command));
  }
  // A device left quiesced by a crashed server with user recovery.
  void quiesced_device(std::uint16_t queues, std::uint16_t depth, std::uint64_t flags) {
    device = {};
    device.nr_hw_queues = queues;
    device.queue_depth = depth;
    device.max_io_buf_bytes = 512 * 1024;
    device.dev_id = test_dev_id;
    device.flags = flags;
    device.state = state_quiesced;
  }

  // ---- UblkKernel ----
  int add_dev(ublksrv_ctrl_dev_info& info) override {
    if (int e = control("ADD_DEV")) return e;
    info.dev_id = next_dev_id++;
    present = true;
    info.nr_hw_queues = std::min(info.nr_hw_queues, queues_max);
    info.queue_depth = std::min(info.queue_depth, depth_max);
    info.state = state_dead;
    device = info;
    return 0;
  }
  int get_dev_info(std::uint32_t dev_id, ublksrv_ctrl_dev_info& info) override {
    if (int e = control("GET_DEV_INFO")) return e;
    if (!present || dev_id != device.dev_id) return -ENOENT;
    info = device;
    return 0;
  }
  int get_params(std::uint32_t dev_id, ublk_params& p) override {
    if (int e = control("GET_PARAMS")) return e;
    if (!present || dev_id != device.dev_id) return -ENOENT;
    p = params;
    return 0;
  }
  int set_params(std::uint32_t, const ublk_params& p) override {
    if (int e = control("SET_PARAMS")) return e;
    params = p;
    return 0;
  }
  int start_dev(std::uint32_t, std::int32_t pid) override {
    return go_live(fmt::format("START_DEV {}", pid), pid);
  }
  int stop_dev(std::uint32_t) override {
    if (on_stop) on_stop();
    while (starting)
      REQUIRE(changed_.wait(std::nullopt) == fiber::WakeReason::woken);
    if (int e = control("STOP_DEV")) return e;
    stopped = true;
    device.state = state_dead;
    for (auto& [key, s] : slots_) {
      if (!s.armed || s.result) continue;
      s.result = io_res_abort;
      s.wait->wake_all();
    }
    return 0;
  }
  int del_dev(std::uint32_t) override {
    if (int e = control("DEL_DEV")) return e;
    present = false;
    return 0;
  }
  int start_user_recovery(std::uint32_t) override { return control("START_USER_RECOVERY"); }
  int end_user_recovery(std::uint32_t, std::int32_t pid) override {
    return go_live(fmt::format("END_USER_RECOVERY {}", pid), pid);
  }
  int open_queues(const ublksrv_ctrl_dev_info& info) override {
    REQUIRE(info.dev_id == device.dev_id);
    // A new server: the dead one's commands are forgotten.
    crashed = false;
    stopped = false;
    return control("OPEN_QUEUES");
  }
  void close_queues() override { log.push_back("CLOSE_QUEUES"); }
  ublksrv_io_desc descriptor(std::uint16_t queue, std::uint16_t tag) const override {
    return slots_.at(key(queue, tag)).desc;
  }
  int fetch(std::uint16_t queue, std::uint16_t tag, std::span<std::byte> buffer) override {
    log.push_back(fmt::format("FETCH {} {}", queue, tag));
    return arm(queue, tag, buffer);
  }
  int commit_and_fetch(std::uint16_t queue, std::uint16_t tag, std::int32_t result,
                       std::span<std::byte> buffer) override {
    Slot& s = slot(queue, tag);
    if (crashed) return io_res_abort;
    Commit commit{queue, tag, result, {}};
    if (result > 0 && (s.desc.op_flags & op_mask) == op_read) {
      commit.data.assign(s.buffer.begin(), s.buffer.begin() + result);
    }
    commits.push_back(std::move(commit));
    changed_.wake_all();
    outstanding_--;
    return arm(queue, tag, buffer);
  }

 private:
  struct Slot {
    std::unique_ptr<fiber::WaitQueue> wait;
    std::span<std::byte> buffer;
    bool armed = false;
    std::optional<int> result;
    ublksrv_io_desc desc{};
  };

  static std::uint32_t key(std::uint16_t queue, std::uint16_t tag) {
    return (std::uint32_t{queue} << 16) | tag;
  }
  Slot& slot(std::uint16_t queue, std::uint16_t tag) {
    Slot& s = slots_[key(queue, tag)];
    if (!s.wait) s.wait = std::make_unique<fiber::WaitQueue>(scheduler_);
    return s;
  }
  void run_start() {
    starting = true;
    if (during_start) during_start();
    starting = false;
    changed_.wake_all();
  }
  // START_DEV and END_USER_RECOVERY: unless `command` is set to fail, run during_start,
  // then the device is live, served by `pid`.
  int go_live(const std::string& command, std::int32_t pid) {
    if (int e = control(command)) return e;
    run_start();
    device.state = state_live;
    device.ublksrv_pid = pid;
    return 0;
  }
  int control(const std::string& command) {
    log.push_back(command);
    auto found = fail.find(command.substr(0, command.find(' ')));
    return found == fail.end() ? 0 : -found->second;
  }
  // The tag's fetch: outstanding until issue() or STOP_DEV.
  int arm(std::uint16_t queue, std::uint16_t tag, std::span<std::byte> buffer) {
    Slot& s = slot(queue, tag);
    REQUIRE_FALSE(s.armed);  // one command per tag at a time
    REQUIRE(buffer.size() >= device.max_io_buf_bytes);
    if (stopped || crashed) return io_res_abort;
    s.buffer = buffer;
    s.armed = true;
    while (!s.result) {
      if (s.wait->wait(std::nullopt) != fiber::WakeReason::woken) break;
    }
    s.armed = false;
    int result = s.result.value_or(-ECANCELED);
    s.result.reset();
    return result;
  }

  fiber::Scheduler& scheduler_;
  fiber::WaitQueue changed_;  // a commit, or START_DEV ended
  std::map<std::uint32_t, Slot> slots_;
  std::size_t outstanding_ = 0;
};

}  // namespace hast::real::ublk::fake
