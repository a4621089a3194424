// RealUblkKernel: UblkKernel on the Linux ublk driver (reference/frontends.md §1).
//
// Control plane: /dev/ublk-control with an io_uring of its own, set up with
// IORING_SETUP_SQE128, because struct ublksrv_ctrl_cmd (32 bytes) lives in the SQE's
// command area and the driver rejects control commands from 64-byte SQEs. Our Ring (the
// scheduler's poller) uses normal SQEs, so it cannot carry them. Each control command runs
// on a helper thread (run_off_thread) that submits it and waits for its CQE, while the
// calling fiber is suspended: START_DEV and END_USER_RECOVERY wait in the kernel for the
// tags' FETCH_REQs and for the partition scan's READs, which fibers of the scheduler's
// thread serve. The control ring is shared with those threads and guarded by a mutex.
//
// Data plane: FETCH_REQ and COMMIT_AND_FETCH_REQ go through the scheduler's Ring as
// URING_CMDs on /dev/ublkcN (struct ublksrv_io_cmd is 16 bytes: a normal SQE holds it).
// The driver requires every command of a queue to come from one thread: the scheduler's.
// open_queues() maps each queue's descriptor array read-only; descriptor() copies one.
//
// Opcode encoding: kernels 6.4 and later take the ioctl-encoded opcodes (UBLK_U_*, and
// may be built without the legacy ones); 6.0 to 6.3 know only the legacy numbers (the
// ioctl number alone, _IOC_NR). Until a command has succeeded the encoding is unknown:
// a command that fails ioctl-encoded is sent once more with its legacy number, and the
// first success fixes the encoding for every later command, control and I/O.
//
// Not verifiable on machines without CONFIG_BLK_DEV_UBLK (the development and CI VMs):
// the encoding is tested on its own, the rest by tests that skip without the driver.
#pragma once

#include <liburing.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/fiber/scheduler.h"
#include "core/result.h"
#include "real/ring.h"
#include "real/ublk/ublk_kernel.h"

namespace hast::real::ublk {

// Fills a 128-byte SQE (of an IORING_SETUP_SQE128 ring) with control command `op` on the
// control descriptor `fd`, `cmd` in its command area.
void prepare_control_sqe(io_uring_sqe* sqe, int fd, std::uint32_t op, const ublksrv_ctrl_cmd& cmd);
// Fills a normal SQE with I/O command `op` on the /dev/ublkcN descriptor `fd`.
void prepare_io_sqe(io_uring_sqe* sqe, int fd, std::uint32_t op, const ublksrv_io_cmd& cmd);
// The legacy number of an ioctl-encoded opcode (what kernels before 6.4 take).
constexpr std::uint32_t legacy_opcode(std::uint32_t op) {
  return _IOC_NR(op);
}

class RealUblkKernel final : public UblkKernel {
 public:
  // Opens `control_path` and its SQE128 ring. Errors: no driver (Errc::not_found), not
  // privileged (refused), io_uring unavailable (io).
  static Result<std::unique_ptr<RealUblkKernel>> open(
      fiber::Scheduler& scheduler, Ring& ring, std::string control_path = "/dev/ublk-control");
  // Closes the queues and the control channel (the helper threads share it until done).
  ~RealUblkKernel() override;
  RealUblkKernel(const RealUblkKernel&) = delete;
  RealUblkKernel& operator=(const RealUblkKernel&) = delete;

  int add_dev(ublksrv_ctrl_dev_info& info) override;
  int get_dev_info(std::uint32_t dev_id, ublksrv_ctrl_dev_info& info) override;
  int set_params(std::uint32_t dev_id, const ublk_params& params) override;
  int get_params(std::uint32_t dev_id, ublk_params& params) override;
  int start_dev(std::uint32_t dev_id, std::int32_t pid) override;
  int stop_dev(std::uint32_t dev_id) override;
  int del_dev(std::uint32_t dev_id) override;
  int start_user_recovery(std::uint32_t dev_id) override;
  int end_user_recovery(std::uint32_t dev_id, std::int32_t pid) override;

  // Opens /dev/ublkcN (retrying for about a second: udev may create it late) and maps the
  // descriptors of every queue.
  int open_queues(const ublksrv_ctrl_dev_info& info) override;
  void close_queues() override;
  ublksrv_io_desc descriptor(std::uint16_t queue, std::uint16_t tag) const override;
  int fetch(std::uint16_t queue, std::uint16_t tag, std::span<std::byte> buffer) override;
  int commit_and_fetch(std::uint16_t queue, std::uint16_t tag, std::int32_t result,
                       std::span<std::byte> buffer) override;

 private:
  class Control;
  struct Mapping {
    void* address = nullptr;
    std::size_t length = 0;
  };

  RealUblkKernel(fiber::Scheduler& scheduler, Ring& ring, std::shared_ptr<Control> control);
  // Runs one control command off the scheduler's thread; `payload` (may be empty) is
  // copied to the kernel's buffer and back. Returns the CQE's result.
  int command(std::uint32_t op, std::uint32_t dev_id, std::uint64_t data,
              std::span<std::byte> payload);
  int run_control(std::uint32_t op, const ublksrv_ctrl_cmd& cmd,
                  const std::shared_ptr<std::vector<std::byte>>& buffer);
  int io(std::uint32_t op, std::uint16_t queue, std::uint16_t tag, std::int32_t result,
         std::span<std::byte> buffer);

  fiber::Scheduler& scheduler_;
  Ring& ring_;
  std::shared_ptr<Control> control_;
  int char_fd_ = -1;
  std::uint16_t queue_depth_ = 0;
  std::vector<Mapping> descriptors_;  // one per queue
  enum class Encoding : std::uint8_t { unknown, ioctl, legacy };
  Encoding encoding_ = Encoding::unknown;
};

}  // namespace hast::real::ublk
