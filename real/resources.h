// What hastd plugs into HastNode for real resources: the providers (PosixDisk, opened
// when a role leaves init) and the frontends (NBD, FUSE + loop; ublk later).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "core/io/log.h"
#include "core/io/network.h"
#include "core/replication/node.h"
#include "real/posix_disk.h"
#include "real/ring.h"

namespace hast::real {

// Opens each resource's `local` path as a PosixDisk (exclusive lock: a second hastd or a
// running `hastctl create` makes the role change fail with the path named).
class PosixDiskProvider final : public replication::DiskProvider {
 public:
  explicit PosixDiskProvider(Ring& ring) : ring_(ring) {}
  Result<Disk*> open(const config::ResourceConfig& resource) override;
  void close(const config::ResourceConfig& resource) override;
  // The open disk of `resource`, or null.
  const PosixDisk* find(std::string_view resource) const;
  // The ring the disks (and the FUSE frontends) run on.
  Ring& ring() const { return ring_; }

 private:
  Ring& ring_;
  std::map<std::string, std::unique_ptr<PosixDisk>, std::less<>> open_;
};

// Where a daemon without a Unix control socket keeps its per-resource runtime files.
inline constexpr std::string_view default_runtime_directory = "/var/run/hast";

// The directory of the control socket, where NBD sockets and FUSE mounts of resources go
// (two nodes on one machine each get their own); default_runtime_directory when the
// control address is not a Unix socket.
std::string runtime_directory(const config::ConfiguredAddress& control);

// Frontends of a primary:
// - `frontend nbd` serves the resource on its NBD address (a TCP address is served with a
//   warning in the log: NBD has no authentication);
// - `frontend fuse [LINK]` mounts a FUSE file system on <runtime directory>/<name>.fuse
//   holding one file, `data`, attaches a loop device to it and links LINK to the device
//   (real/fuse/fuse_device.h: leftovers of a killed hastd are cleared first);
// - `none` serves nothing;
// - `ublk [LINK]` serves /dev/ublkbN and links LINK to it (real/ublk/ublk_frontend.h);
//   without the driver the role change fails, naming the resource, /dev/ublk-control
//   and the fix, never silently replaced by another frontend.
class RealFrontends final : public replication::FrontendFactory {
 public:
  // `runtime_directory`: see runtime_directory() above.
  RealFrontends(fiber::Scheduler& scheduler, Network& network, Log& log,
                const PosixDiskProvider& disks,
                std::string runtime_directory = std::string(default_runtime_directory))
      : scheduler_(scheduler),
        network_(network),
        log_(log),
        disks_(disks),
        runtime_directory_(std::move(runtime_directory)) {}
  // Suspends while a FUSE frontend mounts and attaches its loop device.
  Result<std::unique_ptr<BlockFrontend>> open(const config::ResourceConfig& resource,
                                              std::uint64_t data_size) override;
  // Suspends while a FUSE frontend tears down (link, loop device, mount, session) or a
  // ublk one (link, STOP_DEV, DEL_DEV).
  void close(BlockFrontend& frontend) override;

 private:
  Result<std::unique_ptr<BlockFrontend>> open_nbd(const config::ResourceConfig& resource,
                                                  std::uint64_t data_size);
  Result<std::unique_ptr<BlockFrontend>> open_fuse(const config::ResourceConfig& resource,
                                                   std::uint64_t data_size);

  fiber::Scheduler& scheduler_;
  Network& network_;
  Log& log_;
  const PosixDiskProvider& disks_;
  std::string runtime_directory_;
};

}  // namespace hast::real
