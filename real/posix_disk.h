// PosixDisk: the local component on Linux, a regular file or a block device driven
// through the resource's io_uring (DESIGN.md §4, core/io/disk.h for the contract).
//
// Model: one open descriptor per provider, owned for the lifetime of the object.
// read/write/flush/discard each prepare io_uring operations with Ring::run(), which
// suspends the calling fiber until the kernel completes them; several fibers may have
// operations in flight at once and they complete in any order. Short transfers are
// continued until the whole buffer is done; a read that reaches the end of a file early
// is Errc::io.
//
// Opening (PosixDisk::open):
// - O_RDWR | O_CLOEXEC; block devices also O_EXCL, so a mounted device or one another
//   process opened exclusively is refused. An exclusive flock(2) guards against a second
//   hastd (or hastctl) on the same path. Either conflict is Errc::busy "provider P is in
//   use by another process".
// - O_DIRECT per DirectIo. A file system that refuses O_DIRECT (EINVAL at open) makes the
//   disk fall back to buffered I/O; direct_io() tells which one is in use.
// - Size: st_size for files, BLKGETSIZE64 for block devices. Sector size: BLKSSZGET for
//   block devices; 512 for buffered files, 4096 for files opened with O_DIRECT (the
//   largest logical block size in common use). An empty provider, or one whose size is
//   not a multiple of the sector size, is refused (Errc::invalid_argument naming it).
//
// Properties: volatile_cache is always true (the page cache, or the device's own cache;
// a flush on a write-through device is cheap). discard_zeroes is true for files (a hole
// reads as zeroes) and for block devices unless BlockDiscard::unmap was chosen.
//
// Durability: Fua::yes writes carry RWF_DSYNC; flush() is fdatasync through the ring.
//
// Discard: files and block devices in BlockDiscard::zero mode use fallocate through the
// ring, so the fiber suspends and the thread keeps serving others: first
// PUNCH_HOLE|KEEP_SIZE (a hole in a file; on a device, "write zeroes" by unmapping), and
// when that is EOPNOTSUPP, ZERO_RANGE|KEEP_SIZE (the device writes zeroes itself; the
// kernel's BLKZEROOUT does the same two steps). The fallback is remembered. In
// BlockDiscard::unmap mode a device gets the BLKDISCARD ioctl, which is synchronous: it
// blocks the resource's thread until the device is done (acceptable for a hint that
// modern devices complete quickly; choose zero mode where that matters).
//
// Registered buffers: a read or write whose buffer lies in a BufferPool chunk (hastd's
// request buffers, real/buffer_pool.h) goes as READ_FIXED / WRITE_FIXED, its pages pinned
// once when the ring registered the chunk (Ring::fixed), not at every operation.
//
// Direct I/O needs buffers aligned to the sector size in memory too. A misaligned buffer
// is copied through an aligned bounce buffer allocated for that request: correct, but
// slower, so callers should pass aligned buffers.
//
// Errors name the path and the operation ("write /dev/sdb at 4096: Input/output error");
// errno is translated by errno_error() (real/ring.h).
//
// Threads: a PosixDisk belongs to the thread of its Ring. The Ring must outlive it, and
// no operation may be in flight when it is destroyed (Ring::drain() first).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "core/io/disk.h"
#include "core/result.h"
#include "real/ring.h"

namespace hast::real {

// Whether to open the provider with O_DIRECT (bypassing the page cache).
enum class DirectIo : std::uint8_t {
  off,      // never
  devices,  // block devices only (the default: files in tests often live on tmpfs)
  all,      // block devices and files
};

// What discard() does on a block device.
enum class BlockDiscard : std::uint8_t {
  zero,   // zero the range (unmapping where the device can): discard_zeroes is true
  unmap,  // BLKDISCARD: a hint, the range reads back unspecified afterwards
};

struct PosixDiskOptions {
  DirectIo direct = DirectIo::devices;
  BlockDiscard block_discard = BlockDiscard::zero;
};

class PosixDisk final : public Disk {
 public:
  // Opens the provider at `path` (see the top of this file). Errors: Errc::not_found
  // (no such path), Errc::busy (in use), Errc::invalid_argument (not a file or block
  // device, empty, size not a multiple of the sector size), Errc::refused (permission),
  // Errc::io otherwise. Does not suspend; may be called outside a fiber.
  static Result<std::unique_ptr<PosixDisk>> open(Ring& ring, std::string path,
                                                 PosixDiskOptions options = {});

  // Closes the descriptor, which releases the lock. Asserts nothing is in flight.
  ~PosixDisk() override;
  PosixDisk(const PosixDisk&) = delete;
  PosixDisk& operator=(const PosixDisk&) = delete;

  // Disk (core/io/disk.h). Called from a fiber of the Ring's scheduler.
  Result<void> read(std::uint64_t offset, std::span<std::byte> buffer) override;
  Result<void> write(std::uint64_t offset, std::span<const std::byte> data, Fua fua) override;
  Result<void> flush() override;
  Result<void> discard(std::uint64_t offset, std::uint64_t length) override;
  std::uint64_t size() const override { return size_; }
  DiskProperties properties() const override { return properties_; }

  const std::string& path() const { return path_; }
  bool is_block_device() const { return block_device_; }
  bool direct_io() const { return direct_; }
  // Reads and writes submitted on a registered buffer (READ_FIXED/WRITE_FIXED), for tests
  // and statistics.
  std::uint64_t fixed_operations() const { return fixed_operations_; }

 private:
  struct Opened;

  PosixDisk(Ring& ring, std::string path, PosixDiskOptions options, const Opened& opened);

  void check_range(std::uint64_t offset, std::uint64_t length) const;
  bool needs_bounce(const void* data) const;
  template <typename Prep>
  int submit(Prep&& prep);
  Result<void> read_loop(std::uint64_t offset, std::span<std::byte> buffer);
  Result<void> write_loop(std::uint64_t offset, std::span<const std::byte> data, Fua fua);
  Result<void> discard_fallocate(std::uint64_t offset, std::uint64_t length);
  Result<void> discard_ioctl(std::uint64_t offset, std::uint64_t length);
  std::string where(std::string_view operation, std::uint64_t offset) const;

  Ring& ring_;
  std::string path_;
  PosixDiskOptions options_;
  int fd_ = -1;
  bool block_device_ = false;
  bool direct_ = false;
  std::uint64_t size_ = 0;
  DiskProperties properties_;
  // Index into the fallocate modes discard() tries; advanced past modes the kernel
  // reported EOPNOTSUPP for.
  std::size_t discard_mode_ = 0;
  std::uint64_t in_flight_ = 0;
  std::uint64_t fixed_operations_ = 0;
};

// Creates a provider file of `size_bytes` (sparse: it reads as zeroes), for tests and
// hastctl. The file must not exist yet (Errc::busy "P already exists"); `size_bytes`
// must be a positive multiple of 512 (Errc::invalid_argument). Synchronous; callable
// outside a fiber.
Result<void> create_file(const std::string& path, std::uint64_t size_bytes);

}  // namespace hast::real
