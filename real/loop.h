// Loop devices: a regular file exposed as a block device (/dev/loopN). The FUSE frontend
// attaches one to its data file (reference/frontends.md §3 and §6).
//
// Model: attach() binds a free loop device to a backing file with LOOP_CONFIGURE (one
// ioctl: descriptor, logical block size, size limit, direct I/O), or, when the kernel
// lacks it (before 5.8), with LOOP_SET_FD + LOOP_SET_STATUS64 + LOOP_SET_BLOCK_SIZE +
// LOOP_SET_DIRECT_IO, and closes the device again: the binding lives in the kernel, not
// in a descriptor of ours. That matters when the daemon is killed: a loop device it held
// open would be released while the process exits, and the release flushes the device's
// page cache through the backing file; with the file on the daemon's own FUSE mount,
// whose descriptor may not be closed yet, the exit would wait for itself for ever. So a
// killed daemon leaves the device bound (its I/O fails once the FUSE connection is gone)
// and the next one detaches it (loops_backed_by + detach_loop).
//
// Threads: every function here blocks in the kernel, and the kernel talks to the backing
// file meanwhile (open, fsync when direct I/O is switched on, flush and release). When
// that file lives on a FUSE mount served by this process, call them on a thread other than
// the one that serves the mount (real/fuse/off_thread.h), or they never return.
//
// Descriptors are opened close-on-exec and closed before each function returns.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace hast::real {

struct LoopOptions {
  // The device's logical block size: 512, 1024, 2048 or 4096. I/O through the device is
  // aligned to it; a file system made on it cannot be mounted with a larger one.
  std::uint32_t block_size = 512;
  // LO_FLAGS_DIRECT_IO: the loop device keeps no page cache of its own. The kernel may
  // refuse it for a backing file that cannot do direct I/O; direct_io() tells.
  bool direct_io = true;
  // Bytes of the file the device covers from its start (lo_sizelimit); 0: all of it.
  // A multiple of block_size.
  std::uint64_t size_limit = 0;
  // Use the pre-5.8 ioctls even where LOOP_CONFIGURE exists (tests the fallback).
  bool test_legacy_ioctls = false;
};

// One loop device bound by attach(). A plain value: it holds no descriptor, and
// destroying it leaves the device bound (detach() unbinds it).
class LoopDevice {
 public:
  // Binds a free loop device to `backing_path` (opened read-write; a canonical path, as
  // sysfs will show it). Retries when another process takes the free device first.
  // Errors: the backing file cannot be opened (not_found, refused), no loop support
  // (/dev/loop-control missing: not_found), the kernel refuses the configuration
  // (invalid_argument for a bad block size or size limit, io).
  static Result<LoopDevice> attach(const std::string& backing_path, const LoopOptions& options);

  // Unbinds the device if it is still bound to our backing file (LOOP_CLR_FD): at once
  // when nobody holds it open, else when its last user closes it (a mounted file system,
  // whose I/O keeps going to the backing file until then). Idempotent. Errors: those of
  // detach_loop().
  Result<void> detach();

  int number() const { return number_; }
  // "/dev/loopN".
  const std::string& path() const { return path_; }
  const std::string& backing_path() const { return backing_path_; }
  std::uint32_t block_size() const { return block_size_; }
  // Whether the kernel runs the device with direct I/O (it may refuse the request).
  bool direct_io() const { return direct_io_; }
  // Whether the device is bound to our backing file now (reads sysfs).
  bool bound() const;

 private:
  LoopDevice(int number, std::string backing_path, std::uint32_t block_size, bool direct_io);

  int number_ = -1;
  std::string path_;
  std::string backing_path_;
  std::uint32_t block_size_ = 0;
  bool direct_io_ = false;
  bool detached_ = false;
};

// A loop device and the file it is bound to, as /sys/block/loopN/loop/backing_file shows
// it (the kernel's canonical path of the file).
struct LoopBacking {
  int number = -1;
  std::string device;  // "/dev/loopN"
  std::string backing_file;
};

// Every loop device bound to exactly `backing_path` (a canonical path). Reads sysfs only.
std::vector<LoopBacking> loops_backed_by(std::string_view backing_path);

// Whether loop device `number` is bound to a file.
bool loop_bound(int number);

// Asks the kernel to detach loop device `number` (LOOP_CLR_FD, then close): at once when
// nobody holds it open, else when its last user closes it. Errors: the device cannot be
// opened or the ioctl fails (a device that is no longer bound is success).
Result<void> detach_loop(int number);

}  // namespace hast::real
