// ByteBuffer: a heap byte buffer for request data on the I/O path, aligned for direct I/O
// and not initialised on allocation.
//
// Why not std::vector<std::byte>: a vector's resize() zero-fills every byte (a memset as
// large as the payload, which the next recv or read overwrites anyway), and its storage is
// aligned to 16 bytes only, so a disk opened with O_DIRECT must copy it through a bounce
// buffer (real/posix_disk.h). A ByteBuffer's storage starts on a byte_buffer_alignment
// boundary, a multiple of every sector size we support, so a buffer at a sector-aligned
// offset within it can go to the disk as is.
//
// Model: owns `size()` bytes (possibly none) at data(); movable, not copyable (copies are
// spelled copy_of). The bytes of a fresh or grown buffer are unspecified until written:
// the caller fills them (recv_exact, Disk::read) before reading them. Sizes and iterators
// follow std::vector where they exist, so a ByteBuffer converts to std::span<std::byte>.
// An empty buffer holds no allocation and data() is nullptr.
//
// Storage reuse: every request allocates its buffers (a WRITE's payload on both nodes, a
// READ's data), and glibc serves a page-aligned block by splitting a larger chunk, after
// consolidating its small-chunk bins: measurable per 4 KiB request. So storage of up to
// cached_bytes_max is rounded up to whole pages and, when freed, kept by the freeing
// thread for the next buffer of the same page count (ByteBufferCache, bounded per size and
// in total; in hastd the blocks themselves come from operator new, which
// real/pooled_new.cc routes to the registered BufferPool). Only the allocator's cost
// changes: contents stay unspecified either way, and nothing depends on addresses.
// AddressSanitizer builds (HAST_ASAN) bypass the cache so that a use after free is still
// caught.
//
// Capacity: a buffer's storage holds capacity_of(size) bytes; reset() keeps the storage
// only for a size of the same capacity, so the capacity derived from the size is always
// the size allocated.
//
// Thread exit: a thread's cache is destroyed with its other thread_local objects, and a
// buffer may be freed after that (by a thread_local or static object destroyed later).
// Such a buffer goes straight back to the heap: the cache is reached through a trivially
// destructible thread_local slot (ByteBufferCacheSlot) that the cache's owner clears when
// it goes (byte_buffer.cc).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/assert.h"
#include "core/sanitizer.h"

namespace hast {

// Alignment of every ByteBuffer's storage: a page, and the largest logical block size
// in common use (4Kn disks, files opened with O_DIRECT).
inline constexpr std::size_t byte_buffer_alignment = 4096;

namespace detail {

inline constexpr bool byte_buffer_cache_enabled = !HAST_ASAN;

class ByteBufferCache;

// How a thread reaches its cache: plain data, constant-initialised and trivially
// destructible, so valid for the thread's whole life, unlike the cache (byte_buffer.cc).
struct ByteBufferCacheSlot {
  ByteBufferCache* cache = nullptr;  // the thread's cache while it lives
  bool destroyed = false;            // it was made and has been destroyed: use the heap
};
static_assert(std::is_trivially_destructible_v<ByteBufferCacheSlot>);
inline constinit thread_local ByteBufferCacheSlot byte_buffer_cache_slot{};

// Freed ByteBuffer storage kept for reuse, by size in pages (1 .. size_classes). Bounded:
// at most blocks_per_class_max blocks of a size and bytes_max bytes in all; a block beyond
// either goes back to the heap. Its destructor frees the blocks it keeps. Not thread-safe:
// each thread has its own (local()); a standalone one is for tests.
class ByteBufferCache {
 public:
  static constexpr std::size_t page_bytes = byte_buffer_alignment;
  static constexpr std::size_t size_classes = 32;  // up to 128 KiB: a request's largest part
  static constexpr std::size_t cached_bytes_max = size_classes * page_bytes;
  static constexpr std::size_t blocks_per_class_max = 64;
  static constexpr std::size_t bytes_max = 8 * 1024 * 1024;
  static_assert(cached_bytes_max <= bytes_max);

  ByteBufferCache() = default;
  ByteBufferCache(const ByteBufferCache&) = delete;
  ByteBufferCache& operator=(const ByteBufferCache&) = delete;
  ~ByteBufferCache();

  // The calling thread's cache, made on first use; nullptr once the thread's thread_local
  // objects are being destroyed and the cache went with them (free to the heap then).
  static ByteBufferCache* local() {
    ByteBufferCacheSlot& slot = byte_buffer_cache_slot;
    if (slot.cache != nullptr) [[likely]]
      return slot.cache;
    if (slot.destroyed) return nullptr;
    return make_local();
  }

  // Bytes of storage behind a buffer of `size` (> 0) bytes: whole pages when cacheable.
  static std::size_t capacity_of(std::size_t size) {
    HAST_ASSERT(size > 0);
    if (!byte_buffer_cache_enabled || size > cached_bytes_max) return size;
    return (size + page_bytes - 1) / page_bytes * page_bytes;
  }

  // Whether blocks of `capacity` bytes are kept at all: whole pages, 1 .. size_classes.
  static bool cacheable(std::size_t capacity) {
    return byte_buffer_cache_enabled && capacity > 0 && capacity <= cached_bytes_max &&
           capacity % page_bytes == 0;
  }

  // A kept block of `capacity` bytes (capacity_of's result), or nullptr when none.
  std::byte* take(std::size_t capacity) {
    if (!cacheable(capacity)) return nullptr;
    std::vector<std::byte*>& blocks = free_[capacity / page_bytes - 1];
    if (blocks.empty()) return nullptr;
    std::byte* block = blocks.back();
    blocks.pop_back();
    HAST_ASSERT(block != nullptr);
    HAST_ASSERT(bytes_ >= capacity);
    bytes_ -= capacity;
    return block;
  }

  // Keeps `block` (not null) of `capacity` bytes, from heap_allocate(capacity); false when
  // it is not kept (the caller frees it).
  bool keep(std::byte* block, std::size_t capacity) {
    HAST_ASSERT(block != nullptr);
    if (!cacheable(capacity) || bytes_ + capacity > bytes_max) return false;
    std::vector<std::byte*>& blocks = free_[capacity / page_bytes - 1];
    if (blocks.size() >= blocks_per_class_max) return false;
    if (blocks.capacity() == 0) blocks.reserve(blocks_per_class_max);
    blocks.push_back(block);
    bytes_ += capacity;
    HAST_ASSERT(bytes_ <= bytes_max);
    return true;
  }

  // Bytes kept, over every size.
  std::size_t bytes() const { return bytes_; }

  // The heap's side: `capacity` (> 0) bytes aligned to byte_buffer_alignment, and back.
  static std::byte* heap_allocate(std::size_t capacity) {
    HAST_ASSERT(capacity > 0);
    void* raw = ::operator new(capacity, std::align_val_t{byte_buffer_alignment});
    HAST_ASSERT(reinterpret_cast<std::uintptr_t>(raw) % byte_buffer_alignment == 0);
    return static_cast<std::byte*>(raw);
  }
  static void heap_free(std::byte* block, std::size_t capacity) {
    HAST_ASSERT(block != nullptr);
    HAST_ASSERT(capacity > 0);
    // Unsized: clang (the fuzz build) has no sized deallocation unless asked for it.
    ::operator delete(block, std::align_val_t{byte_buffer_alignment});
  }

 private:
  // local()'s first call on a thread: makes the thread's cache (byte_buffer.cc).
  static ByteBufferCache* make_local();

  std::vector<std::byte*> free_[size_classes];
  std::size_t bytes_ = 0;
};

}  // namespace detail

class ByteBuffer {
 public:
  ByteBuffer() = default;
  // `size` bytes, unspecified contents.
  explicit ByteBuffer(std::size_t size) { acquire(size); }
  // `size` bytes, each `fill`.
  ByteBuffer(std::size_t size, std::byte fill) : ByteBuffer(size) {
    if (size_ > 0) std::memset(data_, std::to_integer<int>(fill), size_);
  }
  ~ByteBuffer() { release(); }

  // The moved-from buffer is left empty (no storage), ready for reset() or assignment.
  ByteBuffer(ByteBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)),
        size_(std::exchange(other.size_, 0)) {}
  ByteBuffer& operator=(ByteBuffer&& other) noexcept {
    if (this == &other) return *this;
    release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    return *this;
  }
  ByteBuffer(const ByteBuffer&) = delete;
  ByteBuffer& operator=(const ByteBuffer&) = delete;

  // A buffer holding a copy of `bytes`.
  static ByteBuffer copy_of(std::span<const std::byte> bytes) {
    ByteBuffer out(bytes.size());
    if (!bytes.empty()) std::memcpy(out.data_, bytes.data(), bytes.size());
    return out;
  }

  std::byte* data() { return data_; }
  const std::byte* data() const { return data_; }
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::byte* begin() { return data_; }
  std::byte* end() { return data_ + size_; }
  const std::byte* begin() const { return data_; }
  const std::byte* end() const { return data_ + size_; }
  std::byte& operator[](std::size_t index) {
    HAST_ASSERT(index < size_);
    return data_[index];
  }
  const std::byte& operator[](std::size_t index) const {
    HAST_ASSERT(index < size_);
    return data_[index];
  }
  std::span<std::byte> span() { return {data_, size_}; }
  std::span<const std::byte> span() const { return {data_, size_}; }

  // Drops the storage and the size: empty() afterwards.
  void clear() { release(); }

  // Discards the contents and holds `size` unspecified bytes. Keeps the storage when the
  // size is the same or needs the same whole pages (ByteBufferCache::capacity_of).
  void reset(std::size_t size) {
    if (size == size_) return;
    if (size > 0 && capacity() == detail::ByteBufferCache::capacity_of(size)) {
      size_ = size;  // the same storage fits
      return;
    }
    release();
    acquire(size);
  }

 private:
  using Cache = detail::ByteBufferCache;

  // Gives an empty buffer storage for `size` bytes (none for 0).
  void acquire(std::size_t size) {
    HAST_ASSERT(data_ == nullptr);
    HAST_ASSERT(size_ == 0);
    if (size == 0) return;
    std::size_t capacity = Cache::capacity_of(size);
    std::byte* block = nullptr;
    if (Cache::cacheable(capacity)) {
      Cache* cache = Cache::local();
      if (cache != nullptr) block = cache->take(capacity);
    }
    if (block == nullptr) block = Cache::heap_allocate(capacity);  // may throw: still empty
    data_ = block;
    size_ = size;
  }

  // Hands the storage back (the thread's cache or the heap) and empties the buffer.
  void release() {
    if (data_ == nullptr) {
      HAST_ASSERT(size_ == 0);
      return;
    }
    HAST_ASSERT(size_ > 0);
    std::size_t allocated = capacity();
    bool kept = false;
    if (Cache::cacheable(allocated)) {
      Cache* cache = Cache::local();
      kept = cache != nullptr && cache->keep(data_, allocated);
    }
    if (!kept) Cache::heap_free(data_, allocated);
    data_ = nullptr;
    size_ = 0;
  }

  // The bytes of storage behind the buffer: capacity_of(size_), which reset() keeps equal
  // to what was allocated (it keeps the storage only for a size of the same capacity).
  std::size_t capacity() const { return data_ == nullptr ? 0 : Cache::capacity_of(size_); }

  // data_ is null exactly when size_ is 0.
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace hast
