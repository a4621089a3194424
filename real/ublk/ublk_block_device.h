// UblkBlockDevice: `frontend ublk [LINK]`, the replicated device as /dev/ublkbN with LINK
// (default /dev/hast/<resource>) pointing at it: a UblkServer on a UblkKernel, the device
// id persisted for user recovery, and the link (reference/frontends.md §1, DESIGN.md §7).
//
// Model, open() (a fiber; suspends for the control commands):
//  1. take over what a predecessor left (ublk_takeover.h): read <runtime dir>/<name>.ublk,
//     ask the kernel about that device, then recover it, or stop and delete a stale one,
//     or leave a foreign one alone, or refuse (another live process serves it);
//  2. start the server (UblkServer::start: ADD_DEV + SET_PARAMS, or START_USER_RECOVERY;
//     the tags' FETCHes) and persist the device id;
//  3. return, with START_DEV / END_USER_RECOVERY still running in the background: it
//     completes only once the core has served the partition scan's reads, and the core
//     starts pulling requests after open() returned. A fiber of ours waits for it and then
//     makes LINK a symbolic link to /dev/ublkbN (atomically replacing an old link).
//
// Teardown, close() (a fiber; role change or stop): remove LINK (only if it points at our
// device), then UblkServer::close (STOP_DEV, the tags end, DEL_DEV), then the state file
// once the device is deleted. A device that could not be deleted keeps its state file, so
// the next open() removes it.
//
// After a kill -9 (UBLK_F_USER_RECOVERY): the kernel keeps the device quiesced, its I/O
// waiting, /dev/ublkbN, LINK and the state file stay; the next open() on this node (hastd
// restarted, role primary) recovers it: the waiting I/O is reissued to the new server and
// applications never see the gap. If the node does not become primary again, the device
// stays quiesced until an operator deletes it (a later open() replaces it).
//
// Threads: the scheduler's. The state file and the link are small local file operations,
// made directly; the control commands run off-thread (RealUblkKernel).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/fiber/task_group.h"
#include "core/io/frontend.h"
#include "core/io/log.h"
#include "real/ring.h"
#include "real/ublk/ublk_server.h"
#include "real/ublk/ublk_takeover.h"

namespace hast::real::ublk {

struct UblkDeviceOptions {
  // The server's options: name, size, sector size, queues. pid 0 means this process;
  // owner_stamp and recover_dev_id are set by open().
  UblkServerOptions server;
  std::string state_path;                   // absolute: where the device id is persisted
  std::string link;                         // absolute: the symbolic link; empty: none
  std::string block_prefix = "/dev/ublkb";  // + the id: the block device LINK points at
  // Whether `pid` is a live process other than this one (kill(pid, 0) by default).
  std::function<bool(std::int32_t)> process_alive;
};

class UblkBlockDevice final : public BlockFrontend {
 public:
  // On the real driver: opens `control_path` and then open(). Errors: no driver (the
  // message names the device node and the fix), those of RealUblkKernel::open and of
  // open(), each naming the resource.
  static Result<std::unique_ptr<UblkBlockDevice>> open_real(
      fiber::Scheduler& scheduler, Ring& ring, Log& log, UblkDeviceOptions options,
      const std::string& control_path = "/dev/ublk-control");

  UblkBlockDevice(fiber::Scheduler& scheduler, Log& log, std::shared_ptr<UblkKernel> kernel,
                  UblkDeviceOptions options);
  // close() first (asserted unless the scheduler was shut down).
  ~UblkBlockDevice() override;
  UblkBlockDevice(const UblkBlockDevice&) = delete;
  UblkBlockDevice& operator=(const UblkBlockDevice&) = delete;

  // Steps 1-3 above. Called once, from a fiber. Errors: refused takeover (Errc::busy, the
  // device and its process named), and those of UblkServer::start; on failure nothing is
  // left serving (a device we added is deleted).
  Result<void> open();

  // The teardown above. Idempotent. From a fiber it suspends until the device is gone.
  void close();

  // Suspends until the background start ended and LINK was made: ok, or why not.
  Result<void> wait_linked();

  // Test only: stops as a kill -9 would (UblkServer::test_abandon): LINK, the state file
  // and the device stay.
  void test_abandon();

  Result<BlockRequest> next_request() override;
  void complete(const BlockRequest& request, Result<void> result) override;

  // After open(): the server, /dev/ublkbN, and what the takeover decided.
  UblkServer& server() { return *server_; }
  std::string block_path() const;
  Takeover takeover() const { return takeover_; }

 private:
  Result<void> take_over();
  Result<void> act_on(Takeover takeover, std::uint32_t dev_id, const TakeoverFacts& facts);
  void persist();
  void link_when_started();

  fiber::Scheduler& scheduler_;
  Log& log_;
  // Declared before the server, which refers to it: destroyed after it.
  std::shared_ptr<UblkKernel> kernel_;
  UblkDeviceOptions options_;
  std::unique_ptr<UblkServer> server_;
  fiber::TaskGroup linker_;
  std::optional<Result<void>> link_result_;
  Takeover takeover_ = Takeover::add;
  bool linked_ = false;
  bool opened_ = false;
  bool closed_ = false;
};

}  // namespace hast::real::ublk
