// BufferPool: size classes over lazily cut chunks of one reserved range (buffer_pool.h).
#include "real/buffer_pool.h"

#include <sys/mman.h>

#include <bit>
#include <new>

#include "core/assert.h"

namespace hast::real {

static_assert(std::has_single_bit(BufferPool::chunk_bytes));
static_assert((BufferPool::block_min << (10)) == BufferPool::chunk_bytes);

BufferPool::BufferPool(unsigned chunks_max) : chunks_max_(chunks_max) {
  HAST_ASSERT(chunks_max > 0 && chunks_max <= chunks_limit);
}

BufferPool::~BufferPool() {
  std::byte* base = base_.load(std::memory_order_relaxed);
  if (base != nullptr) ::munmap(mapping_, mapping_bytes_);
}

BufferPool& BufferPool::process() {
  // Never destroyed: blocks may be freed by static destructors after main returns.
  static BufferPool* pool = new (std::nothrow) BufferPool();
  HAST_ASSERT_MSG(pool != nullptr, "out of memory for the buffer pool");
  return *pool;
}

unsigned BufferPool::class_of(std::size_t size) {
  std::size_t rounded = std::bit_ceil(size < block_min ? block_min : size);
  return static_cast<unsigned>(std::countr_zero(rounded) - std::countr_zero(block_min));
}

// The whole range at once, address space only (MAP_NORESERVE; pages come at first touch),
// aligned to a chunk so that chunks are whole huge pages where transparent huge pages are
// on: fewer page faults and TLB misses for megabyte buffers, and a registration pins a
// few huge pages rather than a thousand small ones.
bool BufferPool::map_range() {
  if (base_.load(std::memory_order_relaxed) != nullptr) return true;
  if (map_failed_) return false;
  std::size_t bytes = std::size_t{chunks_max_} * chunk_bytes + chunk_bytes;
  void* mapping = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mapping == MAP_FAILED) {
    map_failed_ = true;
    return false;
  }
  auto at = reinterpret_cast<std::uintptr_t>(mapping);
  auto aligned = (at + chunk_bytes - 1) & ~(std::uintptr_t{chunk_bytes} - 1);
  auto* base = reinterpret_cast<std::byte*>(aligned);
  ::madvise(base, std::size_t{chunks_max_} * chunk_bytes, MADV_HUGEPAGE);  // a hint only
  mapping_ = mapping;
  mapping_bytes_ = bytes;
  base_.store(base, std::memory_order_release);
  return true;
}

// Cuts the next chunk into blocks of `size_class` and puts them on its free list.
bool BufferPool::grow(unsigned size_class) {
  if (!map_range() || chunks_used_ == chunks_max_) return false;
  std::byte* chunk = base_.load(std::memory_order_relaxed) + chunks_used_ * chunk_bytes;
  std::size_t block = block_min << size_class;
  // Linked back to front, so that the free list hands out the chunk's blocks in address
  // order; only the link words are touched.
  for (std::size_t offset = chunk_bytes; offset >= block; offset -= block) {
    void* entry = chunk + offset - block;
    *static_cast<void**>(entry) = free_[size_class];
    free_[size_class] = entry;
  }
  chunk_class_[chunks_used_] = static_cast<std::uint8_t>(size_class);
  chunks_used_++;
  return true;
}

void* BufferPool::allocate(std::size_t size) {
  if (size == 0 || size > chunk_bytes) return nullptr;
  unsigned size_class = class_of(size);
  std::lock_guard lock(mutex_);
  if (free_[size_class] == nullptr && !grow(size_class)) return nullptr;
  void* block = free_[size_class];
  free_[size_class] = *static_cast<void**>(block);
  mark(block, true);
  return block;
}

bool BufferPool::deallocate(void* block) {
  int index = chunk_of(block, 1);
  if (index < 0) return false;
  std::lock_guard lock(mutex_);
  HAST_ASSERT_MSG(static_cast<unsigned>(index) < chunks_used_, "free of an uncut pool chunk");
  unsigned size_class = chunk_class_[index];
  std::byte* start = chunk(static_cast<unsigned>(index)).data();
  HAST_ASSERT_MSG((static_cast<std::byte*>(block) - start) % (block_min << size_class) == 0,
                  "free of a pointer inside a pool block");
  mark(block, false);
  *static_cast<void**>(block) = free_[size_class];
  free_[size_class] = block;
  return true;
}

void BufferPool::mark(const void* block, bool handed_out) {
  auto offset = static_cast<std::size_t>(static_cast<const std::byte*>(block) -
                                         base_.load(std::memory_order_relaxed));
  std::size_t bit = offset / block_min;
  std::uint64_t mask = std::uint64_t{1} << (bit % word_bits);
  std::uint64_t& word = handed_out_[bit / word_bits];
  HAST_ASSERT_MSG(((word & mask) != 0) != handed_out, "{} of a pool block",
                  handed_out ? "a second hand-out" : "a double free");
  word ^= mask;
}

int BufferPool::chunk_of(const void* data, std::size_t size) const {
  auto* base = base_.load(std::memory_order_acquire);
  if (base == nullptr) return -1;
  auto at = reinterpret_cast<std::uintptr_t>(data);
  auto start = reinterpret_cast<std::uintptr_t>(base);
  if (at < start) return -1;
  std::uintptr_t offset = at - start;
  std::uintptr_t index = offset / chunk_bytes;
  if (index >= chunks_max_) return -1;
  if (size > chunk_bytes - offset % chunk_bytes) return -1;
  return static_cast<int>(index);
}

std::span<std::byte> BufferPool::chunk(unsigned index) const {
  HAST_ASSERT(index < chunks_max_);
  std::byte* base = base_.load(std::memory_order_acquire);
  HAST_ASSERT(base != nullptr);
  return {base + std::size_t{index} * chunk_bytes, chunk_bytes};
}

unsigned BufferPool::chunks_used() const {
  std::lock_guard lock(mutex_);
  return chunks_used_;
}

}  // namespace hast::real
