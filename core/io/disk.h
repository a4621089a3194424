// Disk: the local component, a block-addressed device (a block device or a regular file).
//
// Contract, common to every method:
// - Calls are made from a fiber and may suspend it until the operation completes. Other
//   fibers run meanwhile; several operations may be in flight at once, and they may
//   complete in any order.
// - Buffers passed in must stay valid and unmodified until the call returns.
// - Offsets and lengths are multiples of properties().sector_size and lie within size()
//   (asserted: a misaligned request is a bug of the caller, not an operating error).
// - Failure is a Result error: Errc::io for a device error (the request may or may not
//   have been applied, in whole or per sector), Errc::unsupported where the device
//   cannot do the operation, Errc::cancelled once the owning node is being torn down
//   (nothing completes on a dead node's behalf).
//
// Durability (the crash rule, stated once): a write that completed successfully is
// visible to every later read. It is *durable* (survives a power loss) only once a later
// flush() succeeded or if it was written with Fua::yes. On power loss, writes that were
// not durable may be lost, reordered, or torn at sector granularity: after the loss every
// sector holds its last durable value or one of the values written to it since.
// A process kill (the OS survives) loses nothing the disk acknowledged.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "core/result.h"

namespace hast {

// Force unit access: the write is durable when it completes.
enum class Fua : bool { no = false, yes = true };

struct DiskProperties {
  // Smallest unit the device reads and writes atomically with respect to power loss.
  std::uint32_t sector_size = 512;
  // True when completed writes may sit in a volatile cache until flush(). False means
  // every completed write is durable and flush() is a no-op that succeeds.
  bool volatile_cache = true;
  // True when a discarded range reads back as zeroes afterwards.
  bool discard_zeroes = false;
};

class Disk {
 public:
  virtual ~Disk() = default;

  // Fills `buffer` with the bytes at `offset`. A short read is reported as Errc::io;
  // on failure the contents of `buffer` are unspecified.
  virtual Result<void> read(std::uint64_t offset, std::span<std::byte> buffer) = 0;

  // Writes `data` at `offset`. With Fua::yes the data is durable on success.
  virtual Result<void> write(std::uint64_t offset, std::span<const std::byte> data, Fua fua) = 0;

  // Makes every write that completed before this call durable. On failure, any of
  // those writes may still be volatile.
  virtual Result<void> flush() = 0;

  // Tells the device `length` bytes at `offset` are unused. Reads of the range return
  // zeroes afterwards when properties().discard_zeroes, unspecified bytes otherwise.
  // Not durable until a flush, like a write.
  virtual Result<void> discard(std::uint64_t offset, std::uint64_t length) = 0;

  // Size in bytes, a multiple of the sector size. Constant while the disk is open.
  virtual std::uint64_t size() const = 0;

  virtual DiskProperties properties() const = 0;
};

}  // namespace hast
