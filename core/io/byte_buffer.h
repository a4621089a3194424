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
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <span>
#include <utility>

#include "core/assert.h"

namespace hast {

// Alignment of every ByteBuffer's storage: a page, and the largest logical block size
// in common use (4Kn disks, files opened with O_DIRECT).
inline constexpr std::size_t byte_buffer_alignment = 4096;

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

  // Discards the contents and holds `size` unspecified bytes. Reallocates only when the
  // size changes.
  void reset(std::size_t size) {
    if (size == size_) return;
    clear();
    data_ = allocate(size);
    size_ = size;
  }

 private:
  static std::byte* allocate(std::size_t size) {
    if (size == 0) return nullptr;
    void* raw = ::operator new(size, std::align_val_t{byte_buffer_alignment});
    HAST_ASSERT(reinterpret_cast<std::uintptr_t>(raw) % byte_buffer_alignment == 0);
    return static_cast<std::byte*>(raw);
  }
  void release() {
    if (data_ == nullptr) return;
    ::operator delete(data_, std::align_val_t{byte_buffer_alignment});
    data_ = nullptr;
  }

  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace hast
