// FuseBlockDevice: `frontend fuse [LINK]`, the replicated device as a block device on any
// Linux: a FuseServer's data file attached to a loop device, and LINK pointing at it
// (reference/frontends.md §3 and §6, DESIGN.md §7).
//
// Model, open() (a fiber; suspends while helper threads work):
//  1. helper thread: clear the leftovers of a killed predecessor (mounts.h:
//     clear_leftovers) and make sure the mount point directory exists;
//  2. scheduler thread: mount the FUSE file system on the mount point and start serving;
//  3. helper thread: attach a free loop device to <mount point>/data (LOOP_CONFIGURE:
//     direct I/O, logical blocks of block_size bytes; no descriptor of it is kept, see
//     real/loop.h), then make LINK a symbolic link to /dev/loopN (atomically replacing
//     an old link).
// Attaching makes the kernel send FUSE requests (lookup, open, an fsync for direct I/O),
// so it must not run on the scheduler's thread, which serves them. The core is not running
// yet at that point; the server answers the fsync itself (nothing was written).
//
// Logical block size: block_size (4096 by default) where the provider allows it (its
// sector is no larger), else the provider's sector size. The device covers the data size
// rounded down to a whole number of blocks: with 4096-byte blocks up to 3.5 KiB at the end
// of the data area (HAST's data size follows the activemap, in 512-byte steps) are not
// exposed. Both nodes of a pair have the same data size and compute the same, so a file
// system made on one mounts on the other after a failover. Providers with sectors over
// 4096 bytes cannot be served (loop devices stop at 4096).
//
// Teardown, close() (a fiber; role change or stop, while the core still serves, so the
// last flushes of the loop device complete): in the order of reference/frontends.md §6,
//  1. remove LINK (only if it still points at our loop device);
//  2. detach the loop device (LOOP_CLR_FD): at once if nobody holds it, else (a file
//     system is still mounted on it) when its last user closes it;
//  3. unmount the FUSE file system, lazily if the loop device still holds its file;
//  4. end the session (FuseServer::close): every request not answered yet gets EIO, and
//     closing /dev/fuse aborts the connection.
// Steps 1-3 run on a helper thread; step 4 on the scheduler's.
//
// What applications see when this node stops serving while they still use the device
// (a role change with a file system mounted on LINK, or hastd killed): every I/O on the
// loop device fails with EIO (a file system above reports I/O errors; even a buffered
// write may look successful, so watch hastd's state, not the file system's). After a
// role change the device goes away when they close it (unmount). After a kill -9 the
// kernel keeps the loop device bound to the dead FUSE file, the dead mount ("Transport
// endpoint is not connected") and LINK; the next open() on this node (hastd restarted,
// role primary) clears all three (a loop device still held by a user goes when that user
// closes it) and serves again under the same LINK, on a fresh loop device.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "core/io/frontend.h"
#include "core/io/log.h"
#include "real/fuse/fuse_server.h"
#include "real/loop.h"
#include "real/ring.h"

namespace hast::real::fuse {

struct FuseDeviceOptions {
  std::string name;                 // the resource
  std::string mount_point;          // absolute: where the FUSE file system goes (created, 0700)
  std::string link;                 // absolute: the symbolic link to the loop device
  std::uint64_t size = 0;           // bytes: the resource's data size
  std::uint32_t sector_size = 512;  // the provider's
  std::uint32_t block_size = 4096;  // wanted logical block size of the loop device
  bool direct_io = true;            // loop device with direct I/O (no double caching)
};

class FuseBlockDevice final : public BlockFrontend {
 public:
  FuseBlockDevice(fiber::Scheduler& scheduler, Ring& ring, Log& log, FuseDeviceOptions options);
  // close() first (asserted unless the scheduler was shut down; then the remains are
  // torn down here, without waiting for anything).
  ~FuseBlockDevice() override;
  FuseBlockDevice(const FuseBlockDevice&) = delete;
  FuseBlockDevice& operator=(const FuseBlockDevice&) = delete;

  // Clears leftovers, mounts, attaches and links (see above). Called once, from a fiber;
  // suspends. On failure everything done so far is undone and the error names the step:
  // LINK is not a symbolic link, something foreign is mounted on the mount point, no
  // FUSE or loop support, not privileged, provider sectors over 4096 bytes.
  Result<void> open();

  // Tears down in the order above. Idempotent; from a fiber it suspends until the helper
  // thread is done. Outside a fiber (the scheduler shut down) it ends the session first,
  // so that nothing waits for a server that no longer runs, then does the rest.
  void close();

  // BlockFrontend, forwarded to the server.
  Result<BlockRequest> next_request() override;
  void complete(const BlockRequest& request, Result<void> result) override;

  // After open(): "/dev/loopN" and its logical block size.
  const std::string& loop_path() const { return loop_path_; }
  std::uint32_t block_size() const { return block_size_; }
  // Bytes the loop device covers: the data size rounded down to whole blocks.
  std::uint64_t device_size() const { return options_.size - options_.size % block_size_; }
  const std::string& mount_point() const { return mount_point_; }
  // Null before open().
  const FuseServer* server() const { return server_.get(); }
  const FuseDeviceOptions& options() const { return options_; }

  // Test only: stops as a kill -9 would. The session's descriptor closes (the connection
  // dies; the mount stays, dead); the loop device stays bound and LINK stays.
  void test_abandon();

 private:
  Result<std::uint32_t> choose_block_size() const;
  Result<void> start_server(const std::string& mount_point);
  Result<void> attach();
  void close_in_fiber();
  void close_outside_fiber();

  fiber::Scheduler& scheduler_;
  Ring& ring_;
  Log& log_;
  FuseDeviceOptions options_;
  std::unique_ptr<FuseServer> server_;
  std::optional<LoopDevice> loop_;  // bound by open(); the teardown's job gets a copy
  std::string mount_point_;         // canonical
  std::string loop_path_;
  std::uint32_t block_size_ = 0;
  bool opened_ = false;
  bool closed_ = false;
};

}  // namespace hast::real::fuse
