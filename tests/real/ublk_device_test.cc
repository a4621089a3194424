// RealUblkKernel: the SQE encoding of ublk commands (runs everywhere), opening without the
// driver, and a whole device on the real driver, which skips with "SKIP: no
// /dev/ublk-control" where CONFIG_BLK_DEV_UBLK is missing (the development and CI VMs).
#include <fcntl.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "real/fuse/off_thread.h"
#include "real/log.h"
#include "real/ublk/ublk_block_device.h"
#include "real/ublk/ublk_device.h"
#include "real/ublk/ublk_server.h"
#include "tests/support/real_loop.h"

namespace hast::real::ublk {
namespace {

constexpr const char* control_path = "/dev/ublk-control";

bool have_driver() {
  if (::access(control_path, F_OK) == 0) return true;
  WARN("SKIP: no /dev/ublk-control (no ublk driver on this kernel)");
  std::printf("SKIP: no /dev/ublk-control (no ublk driver on this kernel)\n");
  return false;
}

TEST_CASE("ublk: control commands fill a 128-byte SQE", "[real][ublk]") {
  alignas(64) std::byte raw[128];
  std::memset(raw, 0xee, sizeof raw);
  auto* sqe = reinterpret_cast<io_uring_sqe*>(raw);
  ublksrv_ctrl_cmd cmd{};
  cmd.dev_id = 3;
  cmd.queue_id = UINT16_MAX;
  cmd.addr = 0x1122334455667788ULL;
  cmd.len = 64;
  cmd.data[0] = 99;
  prepare_control_sqe(sqe, 5, cmd_add_dev, cmd);
  CHECK(sqe->opcode == IORING_OP_URING_CMD);
  CHECK(sqe->fd == 5);
  CHECK(sqe->cmd_op == 0xc0207504U);
  CHECK(sqe->flags == 0);
  CHECK(std::memcmp(sqe->cmd, &cmd, sizeof cmd) == 0);
  // The command runs 16 bytes past a normal SQE: the ring must be SQE128.
  CHECK(offsetof(io_uring_sqe, cmd) + sizeof cmd == 80);
  CHECK(raw[127] == std::byte{0});
}

TEST_CASE("ublk: the legacy numbers are those of the 6.1 header", "[real][ublk]") {
  // Kernels 6.0 to 6.3 take only these (RealUblkKernel falls back to them).
  STATIC_REQUIRE(legacy_opcode(cmd_get_dev_info) == UBLK_CMD_GET_DEV_INFO);
  STATIC_REQUIRE(legacy_opcode(cmd_add_dev) == UBLK_CMD_ADD_DEV);
  STATIC_REQUIRE(legacy_opcode(cmd_del_dev) == UBLK_CMD_DEL_DEV);
  STATIC_REQUIRE(legacy_opcode(cmd_start_dev) == UBLK_CMD_START_DEV);
  STATIC_REQUIRE(legacy_opcode(cmd_stop_dev) == UBLK_CMD_STOP_DEV);
  STATIC_REQUIRE(legacy_opcode(cmd_set_params) == UBLK_CMD_SET_PARAMS);
  STATIC_REQUIRE(legacy_opcode(cmd_get_params) == UBLK_CMD_GET_PARAMS);
  STATIC_REQUIRE(legacy_opcode(cmd_start_user_recovery) == UBLK_CMD_START_USER_RECOVERY);
  STATIC_REQUIRE(legacy_opcode(cmd_end_user_recovery) == UBLK_CMD_END_USER_RECOVERY);
  STATIC_REQUIRE(legacy_opcode(io_fetch_req) == UBLK_IO_FETCH_REQ);
  STATIC_REQUIRE(legacy_opcode(io_commit_and_fetch_req) == UBLK_IO_COMMIT_AND_FETCH_REQ);
}

TEST_CASE("ublk: I/O commands fit a normal SQE", "[real][ublk]") {
  io_uring_sqe sqe;
  std::memset(&sqe, 0xee, sizeof sqe);
  ublksrv_io_cmd cmd{};
  cmd.q_id = 1;
  cmd.tag = 17;
  cmd.result = -EIO;
  cmd.addr = 0x7000;
  prepare_io_sqe(&sqe, 9, io_commit_and_fetch_req, cmd);
  CHECK(sqe.opcode == IORING_OP_URING_CMD);
  CHECK(sqe.fd == 9);
  CHECK(sqe.cmd_op == 0xc0107521U);
  CHECK(sqe.user_data == 0);
  CHECK(std::memcmp(sqe.cmd, &cmd, sizeof cmd) == 0);
}

TEST_CASE("ublk: opening without the driver reports not_found", "[real][ublk]") {
  test::RealLoop loop;
  auto kernel = RealUblkKernel::open(loop.scheduler, loop.ring, "/nonexistent/ublk-control");
  REQUIRE_FALSE(kernel);
  CHECK(kernel.error().code() == Errc::not_found);
}

TEST_CASE("ublk: frontend ublk without the driver fails naming the resource and the fix",
          "[real][ublk]") {
  test::RealLoop loop;
  StderrLog log{"ublk-device-test", LogLevel::warning};
  UblkDeviceOptions options;
  options.server.name = "r9";
  options.server.size = 1024 * 1024;
  options.state_path = "/nonexistent/r9.ublk";
  loop.run([&] {
    auto device = UblkBlockDevice::open_real(loop.scheduler, loop.ring, log, options,
                                             "/nonexistent/ublk-control");
    REQUIRE_FALSE(device);
    CHECK(device.error().code() == Errc::not_found);
    std::string message = device.error().message();
    INFO(message);
    CHECK(message.find("r9") != std::string::npos);
    CHECK(message.find("/nonexistent/ublk-control") != std::string::npos);
    CHECK(message.find("modprobe ublk_drv") != std::string::npos);
    CHECK(message.find("Linux 6.0") != std::string::npos);
  });
}

// Serves `disk` (in memory) as the core would, until the server closes.
void serve_memory(UblkServer& server, std::vector<std::byte>& disk) {
  while (auto request = server.next_request()) {
    auto at = disk.begin() + static_cast<std::ptrdiff_t>(request->offset);
    if (request->op == BlockOp::read) std::copy_n(at, request->length, request->data.begin());
    if (request->op == BlockOp::write) std::copy(request->data.begin(), request->data.end(), at);
    if (request->op == BlockOp::discard || request->op == BlockOp::write_zeroes) {
      std::fill_n(at, request->length, std::byte{0});
    }
    server.complete(*request, ok());
  }
}

// Writes a block through /dev/ublkbN and reads it back, on a helper thread.
Result<bool> round_trip(std::uint32_t dev_id) {
  std::string path = "/dev/ublkb" + std::to_string(dev_id);
  int fd = ::open(path.c_str(), O_RDWR | O_DIRECT | O_CLOEXEC);
  if (fd < 0) return fail(Errc::io, "open " + path + ": " + std::strerror(errno));
  void* out = nullptr;
  void* in = nullptr;
  bool same = ::posix_memalign(&out, 4096, 4096) == 0 && ::posix_memalign(&in, 4096, 4096) == 0;
  if (same) {
    std::memset(out, 0x5a, 4096);
    same = ::pwrite(fd, out, 4096, 8192) == 4096 && ::fsync(fd) == 0 &&
           ::pread(fd, in, 4096, 8192) == 4096 && std::memcmp(in, out, 4096) == 0;
  }
  std::free(out);
  std::free(in);
  ::close(fd);
  return same;
}

TEST_CASE("ublk: a device on the real driver serves writes and reads", "[real][ublk]") {
  if (!have_driver()) return;
  test::RealLoop loop;
  StderrLog log{"ublk-device-test", LogLevel::info};
  std::vector<std::byte> disk(16 * 1024 * 1024);
  auto kernel = RealUblkKernel::open(loop.scheduler, loop.ring, control_path);
  REQUIRE(kernel);
  UblkServerOptions options;
  options.name = "ublk-test";
  options.size = disk.size();
  options.queue_depth = 16;
  options.user_recovery = false;
  options.pid = ::getpid();
  UblkServer server(loop.scheduler, **kernel, log, options);
  loop.run([&] {
    // The core serves before START_DEV: its partition scan reads the device.
    loop.spawn("core", [&] { serve_memory(server, disk); });
    REQUIRE(server.start());
    REQUIRE(server.wait_started());
    std::uint32_t dev_id = *server.dev_id();
    auto same = run_off_thread<bool>(loop.scheduler, loop.ring, "ublk-io",
                                     [dev_id] { return round_trip(dev_id); });
    REQUIRE(same);
    CHECK(*same);
    server.close();
  });
  CHECK(disk[8192] == std::byte{0x5a});
}

}  // namespace
}  // namespace hast::real::ublk
