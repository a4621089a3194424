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
// in total). Only the allocator's cost changes: contents stay unspecified either way, and
// nothing depends on addresses. Sanitizer builds (HAST_FUZZ) bypass the cache so that a
// use after free is still caught.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <span>
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

// Freed ByteBuffer storage of one thread, kept for reuse, by size in pages (1 ..
// size_classes). Bounded: at most blocks_per_class_max blocks of a size and bytes_max bytes
// in all; a block beyond either goes back to the heap. Freed at thread exit.
class ByteBufferCache {
 public:
  static constexpr std::size_t page_bytes = byte_buffer_alignment;
  static constexpr std::size_t size_classes = 32;  // up to 128 KiB: a request's largest part
  static constexpr std::size_t cached_bytes_max = size_classes * page_bytes;
  static constexpr std::size_t blocks_per_class_max = 64;
  static constexpr std::size_t bytes_max = 8 * 1024 * 1024;

  ByteBufferCache() = default;
  ByteBufferCache(const ByteBufferCache&) = delete;
  ByteBufferCache& operator=(const ByteBufferCache&) = delete;
  ~ByteBufferCache() {
    for (std::size_t index = 0; index < size_classes; index++) {
      for (std::byte* block : free_[index])
        ::operator delete(block, std::align_val_t{byte_buffer_alignment});
    }
  }

  static ByteBufferCache& local() {
    thread_local ByteBufferCache cache;
    return cache;
  }

  // Bytes of storage behind a buffer of `size` (> 0) bytes: whole pages when cacheable.
  static std::size_t capacity_of(std::size_t size) {
    HAST_ASSERT(size > 0);
    if (!byte_buffer_cache_enabled || size > cached_bytes_max) return size;
    return (size + page_bytes - 1) / page_bytes * page_bytes;
  }

  // A kept block of `capacity` bytes (capacity_of's result), or nullptr when none.
  std::byte* take(std::size_t capacity) {
    if (!cacheable(capacity)) return nullptr;
    std::vector<std::byte*>& blocks = free_[capacity / page_bytes - 1];
    if (blocks.empty()) return nullptr;
    std::byte* block = blocks.back();
    blocks.pop_back();
    HAST_ASSERT(bytes_ >= capacity);
    bytes_ -= capacity;
    return block;
  }

  // Keeps `block` of `capacity` bytes for reuse; false when it is not kept (the caller
  // frees it).
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

  std::size_t bytes() const { return bytes_; }

 private:
  static bool cacheable(std::size_t capacity) {
    return byte_buffer_cache_enabled && capacity <= cached_bytes_max &&
           capacity % page_bytes == 0;
  }

  std::vector<std::byte*> free_[size_classes];
  std::size_t bytes_ = 0;
};

}  // namespace detail

class ByteBuffer {
 public:
  ByteBuffer() = default;
  // `size` bytes, unspecified contents.
  explicit ByteBuffer(std::size_t size) : data_(allocate(size)), size_(size) {}
  // `size` bytes, each `fill`.
  ByteBuffer(std::size_t size, std::byte fill) : ByteBuffer(size) {
    if (size_ > 0) std::memset(data_, std::to_integer<int>(fill), size_);
  }
  ~ByteBuffer() { release(); }

  ByteBuffer(ByteBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
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
  void clear() {
    release();
    size_ = 0;
  }

  // Discards the contents and holds `size` unspecified bytes. Keeps the storage when the
  // size is the same or needs the same whole pages (ByteBufferCache::capacity_of).
  void reset(std::size_t size) {
    if (size == size_) return;
    if (size > 0 && size_ > 0 &&
        detail::ByteBufferCache::capacity_of(size) == detail::ByteBufferCache::capacity_of(size_)) {
      size_ = size;  // the same storage fits
      return;
    }
    clear();
    data_ = allocate(size);
    size_ = size;
  }

 private:
  static std::byte* allocate(std::size_t size) {
    if (size == 0) return nullptr;
    std::size_t capacity = detail::ByteBufferCache::capacity_of(size);
    std::byte* kept = detail::ByteBufferCache::local().take(capacity);
    if (kept != nullptr) return kept;
    void* raw = ::operator new(capacity, std::align_val_t{byte_buffer_alignment});
    HAST_ASSERT(reinterpret_cast<std::uintptr_t>(raw) % byte_buffer_alignment == 0);
    return static_cast<std::byte*>(raw);
  }
  void release() {
    if (data_ == nullptr) return;
    HAST_ASSERT(size_ > 0);
    std::size_t capacity = detail::ByteBufferCache::capacity_of(size_);
    if (!detail::ByteBufferCache::local().keep(data_, capacity)) {
      ::operator delete(data_, std::align_val_t{byte_buffer_alignment});
    }
    data_ = nullptr;
  }

  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace hast
