// UblkServer: the ublk frontend of one resource, /dev/ublkbN served by the replication core
// (reference/frontends.md §1, DESIGN.md §3, §7). The driver sits behind UblkKernel, so all
// of the logic here runs against a fake kernel in tests.
//
// Model: start() brings the device up and one fiber per (queue, tag) serves it, kublk's
// shape with fibers for threads:
//   fresh:    ADD_DEV -> SET_PARAMS -> open queues -> FETCH every tag -> START_DEV(pid);
//   recovery: GET_DEV_INFO (UBLK_F_USER_RECOVERY, quiesced) -> START_USER_RECOVERY ->
//             open queues -> FETCH every tag -> END_USER_RECOVERY(pid).
// start() returns once every tag has its FETCH outstanding; the last command (START_DEV
// or END_USER_RECOVERY) then runs in a fiber of its own, in the background. It has to:
// START_DEV completes only after the kernel's partition scan has read the device, and
// those reads reach the core through next_request(), which the caller (the primary) only
// starts pulling once start() has returned. wait_started() waits for that command.
// A tag's fiber loops: the fetch completes with a request in the tag's descriptor; the
// request becomes one or more BlockRequests for next_request(); when complete() was called
// for every part, COMMIT_AND_FETCH_REQ answers it (and waits for the tag's next request).
// The queue depth is the number of tags: the kernel never has more requests in flight.
//
// Mapping (descriptor -> BlockRequest):
//   UBLK_IO_OP_READ          -> read          parts of at most part_bytes_max
//   UBLK_IO_OP_WRITE         -> write         idem; UBLK_IO_F_FUA -> Fua::yes on each part
//   UBLK_IO_OP_FLUSH         -> flush         one part
//   UBLK_IO_OP_DISCARD       -> discard       parts of at most discard_part_bytes_max;
//                                             with FUA, a flush after them
//   UBLK_IO_OP_WRITE_ZEROES  -> write_zeroes  parts of at most part_bytes_max; FUA as write
// Anything else (WRITE_SAME, zone ops) is answered -EOPNOTSUPP; a range that is empty,
// not aligned to sector_size, past the end, or (READ/WRITE) longer than the tag's buffer
// is answered -EINVAL. Success commits the request's byte count (0 for a flush); a failure
// commits -errno of the first part that failed (EIO for most, see errno_of). Never a
// false success: a request is answered success only when every part succeeded.
//
// Buffers: a tag's buffer (max_io_buf_bytes, as the kernel returned it from ADD_DEV)
// holds its request's data; parts point into it. It lives while the core holds a part,
// even after close() answered the request: the tag then fetches into a fresh buffer.
//
// Closing (role change, shutdown): close() fails what the core never took, answers every
// request in flight -EIO at once (the core may still hold parts: complete() stays valid),
// answers -EIO any request that arrives afterwards, then STOP_DEV (the remaining fetches
// end with -ENODEV), joins the tag fibers, closes the queues and DEL_DEVs the device. A
// device started with UBLK_F_USER_RECOVERY survives the daemon's death instead (quiesced,
// its I/O held by the kernel) and a restarted daemon takes it over with recover_dev_id.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/fiber/channel.h"
#include "core/fiber/task_group.h"
#include "core/fiber/wait_queue.h"
#include "core/io/frontend.h"
#include "core/io/log.h"
#include "core/proto/frame.h"
#include "real/ublk/ublk_kernel.h"

namespace hast::real::ublk {

struct UblkServerOptions {
  std::string name;        // the resource, for logs
  std::uint64_t size = 0;  // bytes of the device, a multiple of sector_size
  // The provider's sector size: the device's logical block size and the alignment of every
  // request. A power of two, 512 to 4096.
  std::uint32_t sector_size = 512;
  std::uint16_t queues = 1;        // nr_hw_queues asked for (the kernel may lower it)
  std::uint16_t queue_depth = 64;  // tags per queue, at most queue_depth_max
  // Largest request the kernel sends (max_io_buf_bytes, and each tag's buffer).
  std::uint32_t io_bytes_max = 512 * 1024;
  // Longest part of a read, write or write_zeroes: the replication protocol's request.
  std::uint32_t part_bytes_max = proto::request_size_send_default;
  std::uint32_t discard_part_bytes_max = 16 * 1024 * 1024;
  // Parts waiting for next_request(); a full queue holds the tag fibers back.
  std::size_t queue_capacity = 128;
  // Ask for UBLK_F_USER_RECOVERY: the device outlives a crashed daemon.
  bool user_recovery = true;
  // Take over this quiesced device (after a restart) instead of adding a new one.
  std::optional<std::uint32_t> recover_dev_id;
  // Stored by ADD_DEV in the device's ublksrv_flags (opaque to the kernel, returned by
  // GET_DEV_INFO): tells a restarted daemon whether a device is the one it added.
  std::uint64_t owner_stamp = 0;
  std::int32_t pid = 0;  // the serving process, given to START_DEV / END_USER_RECOVERY
};

enum class UblkState : std::uint8_t {
  created,     // before start()
  starting,    // ADD_DEV .. START_DEV
  recovering,  // START_USER_RECOVERY .. END_USER_RECOVERY
  live,        // serving
  failed,      // START_DEV / END_USER_RECOVERY failed: the device is being torn down
  closing,     // close() running
  closed,      // close() done, or start() failed
};

struct UblkServerStats {
  std::uint64_t requests = 0;  // fetched from the kernel
  std::uint64_t reads = 0;
  std::uint64_t writes = 0;
  std::uint64_t fua_writes = 0;
  std::uint64_t flushes = 0;
  std::uint64_t discards = 0;
  std::uint64_t zeroes = 0;
  std::uint64_t rejected = 0;         // answered with an error before reaching the core
  std::uint64_t failed = 0;           // answered with an error after reaching the core
  std::uint64_t failed_at_close = 0;  // answered -EIO by close() or after it
  std::uint64_t parts = 0;            // BlockRequests queued for the core
  std::uint64_t parts_failed = 0;
};

class UblkServer final : public BlockFrontend {
 public:
  // `options` must be consistent (asserted). Nothing happens before start().
  UblkServer(fiber::Scheduler& scheduler, UblkKernel& kernel, Log& log, UblkServerOptions options);
  // Call close() first, and destroy only after the core completed every part it took
  // (asserted, unless the scheduler was shut down: a dead node).
  ~UblkServer() override;
  UblkServer(const UblkServer&) = delete;
  UblkServer& operator=(const UblkServer&) = delete;

  // Brings the device up (fresh or recovery, see above) and serves it. Called once, from a
  // fiber; suspends for the control commands up to the tags' FETCHes, then returns with
  // START_DEV / END_USER_RECOVERY sent in the background. Errors: a command failed
  // (Errc::io, or not_found / refused / busy for ENOENT / EPERM / EBUSY, with the
  // command's name); recovery of a device without UBLK_F_USER_RECOVERY (unsupported) or
  // not quiesced (busy). On failure what start() set up is torn down again and the
  // server is closed.
  Result<void> start();

  // Suspends until the background START_DEV / END_USER_RECOVERY answered: ok when the
  // device is live; its error when it failed (the server then logged it, stopped the
  // device, deleted a device it added and closed itself: next_request() fails); also the
  // error of a failed start(), and Errc::cancelled when close() came first.
  Result<void> wait_started();

  // Stops serving (see "Closing" above). Idempotent; from a fiber it suspends until the
  // device is gone; from outside a fiber (scheduler shut down) it only fails what it can.
  // A START_DEV still running is waited for (the kernel serialises control commands):
  // the requests of its partition scan are answered -EIO, so it ends.
  void close();

  // Test only: stops as a kill -9 would: no STOP_DEV, no DEL_DEV (with user recovery the
  // kernel keeps the device for the next server). The (fake) kernel must end the tags'
  // fetches first, as the real one does when the process dies. From a fiber.
  void test_abandon();

  // BlockFrontend: suspends until a part is queued; Errc::cancelled once closed.
  Result<BlockRequest> next_request() override;
  // BlockFrontend: never suspends; valid after close() too. Asserts that `request` came
  // from next_request() and was not completed before.
  void complete(const BlockRequest& request, Result<void> result) override;

  UblkState state() const { return state_; }
  // The device's number (/dev/ublkbN), once ADD_DEV or GET_DEV_INFO answered.
  std::optional<std::uint32_t> dev_id() const { return dev_id_; }
  // The device as the kernel set it up (queues and depth may be lower than asked).
  const ublksrv_ctrl_dev_info& info() const { return info_; }
  std::size_t parts_outstanding() const { return parts_.size(); }
  std::size_t tags_serving() const { return tag_fibers_.size(); }
  const UblkServerStats& stats() const { return stats_; }
  // close() or a failed start deleted the device (DEL_DEV succeeded).
  bool device_deleted() const { return deleted_; }

 private:
  struct Io;
  struct Tag;

  // Start-up.
  Result<void> add_device();
  Result<void> attach_recovery();
  Result<void> serve_queues();
  Result<void> control(int result, std::string_view command);
  ublk_params params() const;
  void finish_start(bool recovery);
  void abandon_start(bool delete_it);
  void delete_device();

  // One tag.
  void serve_tag(Tag& tag);
  std::int32_t serve_request(Tag& tag);
  std::int32_t check(const ublksrv_io_desc& desc, const Tag& tag, Io& io);
  void count(const Io& io);
  void submit_parts(const std::shared_ptr<Io>& io);
  bool submit_part(const std::shared_ptr<Io>& io, BlockRequest part);
  void wait_parts(Io& io);
  std::int32_t result_of(Tag& tag, const Io& io);

  // Closing.
  void stop_taking();
  void fail_queued_parts();
  void abort_requests();

  fiber::Scheduler& scheduler_;
  UblkKernel& kernel_;
  Log& log_;
  UblkServerOptions options_;
  UblkState state_ = UblkState::created;
  std::optional<std::uint32_t> dev_id_;
  ublksrv_ctrl_dev_info info_{};
  std::vector<std::unique_ptr<Tag>> tags_;
  std::size_t tags_armed_ = 0;  // tags that sent their first FETCH_REQ
  std::size_t tags_ended_ = 0;
  fiber::WaitQueue tags_changed_;
  fiber::TaskGroup tag_fibers_;
  fiber::TaskGroup control_fiber_;  // the background START_DEV / END_USER_RECOVERY
  std::optional<Result<void>> start_result_;
  fiber::WaitQueue start_changed_;
  bool delete_at_close_ = false;  // a device we added, or recovered and served
  bool deleted_ = false;
  fiber::Channel<BlockRequest> queue_;
  std::map<std::uint64_t, std::shared_ptr<Io>> parts_;  // by BlockRequest id
  std::uint64_t next_part_id_ = 1;
  bool closed_ = false;
  UblkServerStats stats_;
};

}  // namespace hast::real::ublk
