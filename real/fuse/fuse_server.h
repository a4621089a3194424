// FuseServer: the resource's data as one regular file on an in-process FUSE mount, its
// reads and writes turned into BlockRequests (reference/frontends.md §3, DESIGN.md §3, §7).
//
// Model: start() mounts a FUSE file system (type fuse.hast, libfuse3's low-level API) on
// options.mount_point. Its root directory holds one regular file, `data`, options.size
// bytes long, mode 0600, owned by the daemon's user; nothing can be created, removed,
// renamed or resized. Only the daemon's user (root) may use the mount.
//
// Serving, all on the scheduler's thread: a reader fiber waits until /dev/fuse (made
// non-blocking) is readable, through the ring (a poll), receives one request
// (fuse_session_receive_buf) and lets libfuse dispatch it to our operations
// (fuse_session_process_buf). The operations never suspend. Metadata operations (lookup,
// getattr, setattr, open, opendir, readdir, statfs, flush, release) are answered at once;
// data operations become queued requests:
//   read                            -> BlockOp::read
//   write                           -> BlockOp::write; Fua::yes when the write carries
//                                      O_DSYNC (file opened O_SYNC/O_DSYNC, RWF_DSYNC)
//   fsync, fdatasync                -> BlockOp::flush
//   fallocate PUNCH_HOLE|KEEP_SIZE  -> BlockOp::discard
//   fallocate ZERO_RANGE            -> BlockOp::write_zeroes
//   fallocate 0 inside the file     -> done at once (a block device is fully allocated)
// Any other fallocate mode gets EOPNOTSUPP; growing the file gets EFBIG, truncating it
// EPERM. next_request() cuts the oldest queued request into its next part, at most
// part_bytes_max long (discard_part_bytes_max for discards), so requests reach the core
// in arrival order and a long one never waits for room in a queue. The reply goes out
// from complete() when every part has completed: success only when all succeeded, else
// the errno of the first failure; a part that fails stops the parts not yet handed out.
//
// Alignment: writes, discards and zeroing must start and end on options.sector_size (the
// provider's sector); others get EINVAL. The loop device always complies: its logical
// block size is a multiple of the sector. There is no read-modify-write: two unaligned
// writes racing on one sector could tear each other, and nothing needs them. Reads may be
// unaligned: the covering sectors are read and the asked bytes returned. Reads stop at the
// end of the file; a write starting at or after the end gets ENOSPC, one crossing it is
// cut short.
//
// Flush: a flush makes durable the writes completed before it. Until this server has
// completed a write, a flush has nothing to cover and is answered at once. This matters:
// attaching the loop device with direct I/O fsyncs the file before the core runs.
//
// Caching: no writeback cache (the kernel would acknowledge writes the core never saw)
// and every open file is FOPEN_DIRECT_IO, so no page cache sits between the loop device
// (or any reader) and the core; after a failover nothing cached on the old primary is
// served.
//
// Flow control: the reader stops reading /dev/fuse while requests_max requests are
// unanswered; the kernel keeps the rest (at most max_background asynchronous ones).
//
// Threads: a thread that opens, reads, writes or closes the data file waits for this
// server, so it must not be the scheduler's thread (use real/fuse/off_thread.h).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>

#include "core/fiber/task_group.h"
#include "core/fiber/wait_queue.h"
#include "core/io/frontend.h"
#include "core/io/log.h"
#include "core/proto/frame.h"
#include "real/ring.h"

struct fuse_session;
struct fuse_req;
struct fuse_conn_info;
struct fuse_file_info;

namespace hast::real::fuse {

struct FuseServerOptions {
  std::string mount_point;  // an existing directory, canonical path
  std::string name;         // the resource: the mount's source is "hast:<name>"
  std::uint64_t size = 0;   // bytes of the data file, a multiple of sector_size
  // The provider's sector size: the alignment of writes and of every part. A power of
  // two, 512 to 4096.
  std::uint32_t sector_size = 512;
  // Longest part of a read, write or write_zeroes: the replication protocol's request.
  std::uint32_t part_bytes_max = proto::request_size_send_default;
  std::uint32_t discard_part_bytes_max = 16 * 1024 * 1024;
  // FUSE max_write, and the kernel's largest read (max_pages follows it). At most 1 MiB
  // (libfuse's receive buffer).
  std::uint32_t max_write = 1024 * 1024;
  std::size_t requests_max = 64;
  // The kernel's limit of asynchronous requests in flight (direct I/O of the loop device
  // is asynchronous) and its congestion threshold (3/4 of it).
  std::uint16_t max_background = 64;
};

struct FuseServerStats {
  std::uint64_t requests = 0;  // data requests received (read, write, fsync, fallocate)
  std::uint64_t reads = 0;
  std::uint64_t writes = 0;
  std::uint64_t fua_writes = 0;
  std::uint64_t flushes = 0;          // fsync and fdatasync of the data file
  std::uint64_t flushes_at_once = 0;  // answered without the core (no write completed yet)
  std::uint64_t discards = 0;
  std::uint64_t zeroes = 0;
  std::uint64_t rejected = 0;         // answered with an error before reaching the core
  std::uint64_t failed = 0;           // answered with an error after reaching the core
  std::uint64_t failed_at_close = 0;  // of them, answered EIO by close()
  std::uint64_t parts = 0;            // BlockRequests handed to the core
  std::uint64_t parts_failed = 0;
};

class FuseServer final : public BlockFrontend {
 public:
  // `options` must be consistent (asserted). Nothing happens before start().
  FuseServer(fiber::Scheduler& scheduler, Ring& ring, Log& log, FuseServerOptions options);
  // Call close() first, and destroy only after the core completed every part it took
  // (asserted, unless the scheduler was shut down: a dead node).
  ~FuseServer() override;
  FuseServer(const FuseServer&) = delete;
  FuseServer& operator=(const FuseServer&) = delete;

  // Opens /dev/fuse (close-on-exec), mounts on options.mount_point and starts the reader
  // fiber. Does not suspend; mount(2) does not wait for the server. At most once.
  // Errors: no /dev/fuse (not_found), not privileged (refused), no such mount point.
  Result<void> start();

  // Ends the session, the last step of the teardown (after the file system was unmounted,
  // or detached lazily because a loop device still holds its file). Idempotent. Called
  // from a fiber it waits for the reader fiber to end (it never blocks for long):
  // - next_request() fails with Errc::cancelled from now on;
  // - every request not answered yet is answered EIO, queued ones and those whose parts
  //   the core holds alike (never a false success); their buffers stay valid until the
  //   core completes the parts, and those results are dropped;
  // - the /dev/fuse descriptor closes, which aborts the connection if the file system is
  //   still mounted: the kernel then fails everything with ENOTCONN, EIO on a loop device.
  void close();

  // The owner is about to unmount (the teardown): the end of the connection that follows
  // is expected, and not logged as an error.
  void expect_disconnect() { disconnect_expected_ = true; }

  // BlockFrontend: suspends until a request is queued; Errc::cancelled once closed, or
  // when the calling fiber is cancelled.
  Result<BlockRequest> next_request() override;
  // BlockFrontend: never suspends; valid after close() too. Asserts that `request` came
  // from next_request() and was not completed before.
  void complete(const BlockRequest& request, Result<void> result) override;

  // "<mount_point>/data".
  std::string data_path() const;
  bool started() const { return started_; }
  bool closed() const { return closed_; }
  // The kernel ended the connection while we served (someone unmounted the file system
  // or aborted the connection): nothing is served any more, until the role changes.
  bool disconnected() const { return disconnected_; }
  // True once FUSE_INIT was answered.
  bool initialised() const { return initialised_; }
  std::size_t requests_outstanding() const { return requests_.size(); }
  std::size_t parts_outstanding() const { return parts_.size(); }
  const FuseServerStats& stats() const { return stats_; }
  const FuseServerOptions& options() const { return options_; }

 private:
  struct Request;
  friend struct FuseOps;  // the libfuse callbacks (fuse_server.cc)

  // Operations, called by libfuse from the reader fiber. None suspends.
  void on_init(fuse_conn_info* connection);
  void on_lookup(fuse_req* req, std::uint64_t parent, const char* name);
  void on_getattr(fuse_req* req, std::uint64_t ino);
  void on_setattr(fuse_req* req, std::uint64_t ino, std::int64_t new_size, bool set_size);
  void on_open(fuse_req* req, std::uint64_t ino, fuse_file_info* file);
  void on_opendir(fuse_req* req, std::uint64_t ino, fuse_file_info* file);
  void on_readdir(fuse_req* req, std::uint64_t ino, std::size_t size, std::int64_t offset);
  void on_statfs(fuse_req* req);
  void on_read(fuse_req* req, std::uint64_t ino, std::size_t size, std::int64_t offset);
  void on_write(fuse_req* req, std::uint64_t ino, const char* data, std::size_t size,
                std::int64_t offset, int open_flags);
  void on_fsync(fuse_req* req, std::uint64_t ino);
  void on_fallocate(fuse_req* req, std::uint64_t ino, int mode, std::int64_t offset,
                    std::int64_t length);

  // Requests.
  std::shared_ptr<Request> make_request(fuse_req* req, BlockOp op, std::uint64_t offset,
                                        std::uint64_t length);
  void enqueue(const std::shared_ptr<Request>& request);
  void reject(fuse_req* req, int error);
  BlockRequest cut_part(Request& request);
  void answer(Request& request, int forced_error = 0);
  bool aligned(std::uint64_t value) const { return value % options_.sector_size == 0; }

  // The session.
  Result<void> create_session(int fd);
  void read_loop();
  bool wait_for_slot();
  bool wait_readable();
  void connection_ended(int received);
  void destroy_session();

  fiber::Scheduler& scheduler_;
  Ring& ring_;
  Log& log_;
  FuseServerOptions options_;
  fuse_session* session_ = nullptr;
  int fd_ = -1;                                 // /dev/fuse, owned by the session
  fiber::TaskGroup fibers_;                     // the reader
  fiber::WaitQueue queued_;                     // next_request() waits for a queued request
  fiber::WaitQueue slots_;                      // the reader waits for an unanswered request to go
  std::deque<std::shared_ptr<Request>> queue_;  // not fully cut into parts
  std::map<std::uint64_t, std::shared_ptr<Request>> requests_;  // unanswered, by id
  std::map<std::uint64_t, std::shared_ptr<Request>> parts_;     // the core's, by part id
  std::uint64_t next_request_id_ = 1;
  std::uint64_t next_part_id_ = 1;
  std::uint64_t writes_completed_ = 0;  // writes, discards, zeroings answered with success
  bool started_ = false;
  bool closed_ = false;
  bool disconnected_ = false;
  bool disconnect_expected_ = false;
  bool initialised_ = false;
  FuseServerStats stats_;
};

}  // namespace hast::real::fuse
