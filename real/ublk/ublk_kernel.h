// UblkKernel: the thin layer between UblkServer and the ublk driver (reference/frontends.md
// §1), so that the server's logic runs against a fake kernel in tests.
//
// Model: every method is one ublk command and returns what its CQE would: 0 or a positive
// count on success, -errno on failure. Nothing here decides anything: the server chooses
// the commands, their order and what a result means.
//
// Control plane (URING_CMD on /dev/ublk-control): add_dev, set_params, get_params,
// start_dev, stop_dev, del_dev, get_dev_info, start_user_recovery, end_user_recovery. Each suspends
// the calling fiber until the command completed and never blocks the scheduler's thread:
// START_DEV waits in the kernel until every tag has a FETCH outstanding (and, before 6.19,
// until the partition scan's READs were served), and those are served by fibers of the
// same scheduler. A real implementation therefore runs control commands on another
// thread (DESIGN.md §7: "control commands on their own thread").
//
// Data plane (URING_CMD on /dev/ublkcN, after open_queues): fetch and commit_and_fetch
// suspend the calling fiber until the kernel hands this (queue, tag) a request (result
// io_res_ok) or the device stops (io_res_abort, -ENODEV: do not fetch again). The request
// is then described by descriptor(queue, tag). In the default copy mode the kernel copies
// a WRITE's data into the tag's buffer before the fetch completes, and a READ's data out
// of it when the commit arrives, so the buffer belongs to the kernel from the command's
// submission to its completion, and to the server in between.
//
// Threads: one scheduler thread, called from fibers only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "real/ublk/ublk_uapi.h"

namespace hast::real::ublk {

class UblkKernel {
 public:
  virtual ~UblkKernel() = default;

  // ADD_DEV: `info` in (dev_id = UINT32_MAX for "any", queues, depth, buffer size, flags),
  // out as the kernel filled it (dev_id chosen, unknown flags masked off).
  virtual int add_dev(ublksrv_ctrl_dev_info& info) = 0;
  // GET_DEV_INFO of an existing device (its state, flags, queues, depth).
  virtual int get_dev_info(std::uint32_t dev_id, ublksrv_ctrl_dev_info& info) = 0;
  // SET_PARAMS: before START_DEV (or before END_USER_RECOVERY it keeps the old ones).
  virtual int set_params(std::uint32_t dev_id, const ublk_params& params) = 0;
  // GET_PARAMS of an existing device (`params.len` in: the size asked for).
  virtual int get_params(std::uint32_t dev_id, ublk_params& params) = 0;
  // START_DEV with the serving process's pid: /dev/ublkbN appears. Completes only after
  // every tag of every queue has a FETCH outstanding.
  virtual int start_dev(std::uint32_t dev_id, std::int32_t pid) = 0;
  // STOP_DEV: the block device goes away; outstanding fetches complete with io_res_abort.
  virtual int stop_dev(std::uint32_t dev_id) = 0;
  // DEL_DEV: after stop_dev and close_queues. Where the kernel allows it (6.9+:
  // DEL_DEV_ASYNC) it does not wait for the block device's last user (a file system still
  // mounted on it) to close it; older kernels wait for that.
  virtual int del_dev(std::uint32_t dev_id) = 0;
  // START_USER_RECOVERY: a device with UBLK_F_USER_RECOVERY whose server died (state
  // quiesced, or fail_io) accepts a new server; its queues are opened afresh.
  virtual int start_user_recovery(std::uint32_t dev_id) = 0;
  // END_USER_RECOVERY with the new server's pid: completes once every tag is fetched
  // again, and the quiesced requests are reissued to it.
  virtual int end_user_recovery(std::uint32_t dev_id, std::int32_t pid) = 0;

  // Opens /dev/ublkcN and maps each queue's descriptor array. 0 or -errno.
  virtual int open_queues(const ublksrv_ctrl_dev_info& info) = 0;
  // Unmaps and closes what open_queues opened. Idempotent.
  virtual void close_queues() = 0;
  // The request that the last fetch of (queue, tag) delivered. Valid between that
  // fetch's io_res_ok and the next command of the tag.
  virtual ublksrv_io_desc descriptor(std::uint16_t queue, std::uint16_t tag) const = 0;
  // FETCH_REQ: the tag's first command; `buffer` is where the kernel copies its requests'
  // data (at least max_io_buf_bytes). Suspends until a request or the device's stop.
  virtual int fetch(std::uint16_t queue, std::uint16_t tag, std::span<std::byte> buffer) = 0;
  // COMMIT_AND_FETCH_REQ: completes the tag's request with `result` (bytes done, or
  // -errno) and fetches the next one into `buffer`. Suspends like fetch().
  virtual int commit_and_fetch(std::uint16_t queue, std::uint16_t tag, std::int32_t result,
                               std::span<std::byte> buffer) = 0;
};

}  // namespace hast::real::ublk
