// BufferPool: where hastd's page-aligned request buffers live, so that the disk can use
// io_uring registered (fixed) buffers for them.
//
// Why: an O_DIRECT read or write from ordinary memory pins the buffer's pages for every
// operation (get_user_pages and the bio's page list, then unpinning at completion): 5-8 %
// of each daemon's CPU in 1 MiB sequential writes. A buffer inside memory registered with
// the ring (io_uring_register_buffers) was pinned once, at registration, and a fixed
// read or write (IORING_OP_READ_FIXED / WRITE_FIXED) hands the device its pages directly.
// Registered memory must stay mapped and never move, which glibc's heap does not promise
// (it trims and reuses), hence a pool of its own.
//
// Model: one reserved range of address space (chunks_max chunks of chunk_bytes, mapped
// lazily), cut into chunks on demand. A chunk serves one size class: a power of two from
// block_min to chunk_bytes; a request is rounded up to its class. Freed blocks go to
// their class's free list and are reused; chunks are never given back, so the memory a
// pool holds is the high-water mark of the buffers in use, by class (rounded up to whole
// chunks). Every block starts on a block_min boundary (a page, byte_buffer_alignment). A
// request larger than chunk_bytes, or one that finds the range used up, is not served
// (nullptr): the caller allocates elsewhere. A block never spans two chunks, so a chunk
// is the unit a ring registers (chunk_of, chunk).
//
// hastd routes its page-aligned allocations here (real/pooled_new.cc replaces the
// aligned operator new: every ByteBuffer, core/io/byte_buffer.h); the rings register
// the chunks lazily, at the first disk operation on a buffer inside one (Ring::fixed).
//
// Threads: allocate and deallocate from any thread (one mutex); chunk_of and chunk read
// nothing a later allocation changes and need no lock. The range is mapped for the life
// of the pool (the process-wide pool lives until exit).
#pragma once

#include <cstddef>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <span>

namespace hast::real {

class BufferPool {
 public:
  static constexpr std::size_t block_min = 4096;
  static constexpr std::size_t chunk_bytes = std::size_t{4} << 20;
  static constexpr unsigned default_chunks_max = 64;  // 256 MiB of address space
  static constexpr unsigned chunks_limit = 256;

  // Reserves nothing yet: the range is mapped at the first allocation. 0 < chunks_max <=
  // chunks_limit.
  explicit BufferPool(unsigned chunks_max = default_chunks_max);
  // Unmaps the range: only for pools whose blocks are all free and registered nowhere.
  ~BufferPool();
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  // The pool of this process (hastd's request buffers). Never destroyed.
  static BufferPool& process();

  // A block of at least `size` bytes (1 <= size <= chunk_bytes), aligned to block_min;
  // nullptr when `size` is out of range, the range is used up or cannot be mapped.
  void* allocate(std::size_t size);
  // Returns a block of this pool to its free list: true. False (nothing done) when `block`
  // is not inside this pool's range. Precondition: a block from allocate(), not freed yet
  // (asserted: a second free of a block aborts, as glibc's check does, rather than handing
  // the block to two later requests).
  bool deallocate(void* block);

  // Index of the chunk that holds all of [data, data + size), or -1 (outside the pool, or
  // spanning chunks). Cheap: two comparisons and a division.
  int chunk_of(const void* data, std::size_t size) const;
  // The bytes of chunk `index` (< chunks_max()), which chunk_of returned.
  std::span<std::byte> chunk(unsigned index) const;

  unsigned chunks_max() const { return chunks_max_; }
  // Chunks cut so far.
  unsigned chunks_used() const;

 private:
  static constexpr unsigned class_count = 11;  // block_min << 0 .. << 10 == chunk_bytes

  static constexpr std::size_t blocks_per_chunk = chunk_bytes / block_min;
  static constexpr std::size_t word_bits = 64;

  static unsigned class_of(std::size_t size);
  // Marks the block at `block` handed out (true) or free (false); asserts it was not.
  void mark(const void* block, bool handed_out);  // under mutex_
  bool map_range();  // under mutex_
  bool grow(unsigned size_class);  // under mutex_

  unsigned chunks_max_;
  mutable std::mutex mutex_;
  std::atomic<std::byte*> base_{nullptr};  // chunk 0, once mapped
  void* mapping_ = nullptr;  // what munmap takes
  std::size_t mapping_bytes_ = 0;
  bool map_failed_ = false;
  unsigned chunks_used_ = 0;
  std::uint8_t chunk_class_[chunks_limit] = {};  // the size class of each cut chunk
  // Free blocks of each class, linked through their first bytes.
  void* free_[class_count] = {};
  // One bit per block_min of the range: set while a block starting there is handed out.
  std::uint64_t handed_out_[chunks_limit * blocks_per_chunk / word_bits] = {};
};

}  // namespace hast::real
