// BytePool: recycled byte buffers for the simulator's data path.
//
// A simulation moves every client byte through 16 KiB buffers several times (network
// segments, the disk cache's pieces, the stable image's chunks) and frees them as fast as
// it allocates them. glibc serves that size from its general bins (a search, a split and
// a coalesce each time) and hands back memory that is often cold; a per-thread LIFO list
// of buffers of one capacity costs a pointer move and returns the buffer freed last, still
// in cache. Only memory is recycled: a buffer's old bytes are always overwritten before
// they are read (take() returns an empty vector), so nothing a run does depends on the pool.
#pragma once

#include <cstddef>
#include <span>
#include <vector>

namespace hast::sim {

class BytePool {
 public:
  // The capacity of every pooled buffer.
  static constexpr std::size_t buffer_bytes = 16 * 1024;
  // Requests smaller than this get an exact-size buffer from the allocator instead (a
  // small write must not pin 16 KiB in the disk cache).
  static constexpr std::size_t pooled_min = buffer_bytes / 4;
  // Buffers kept at most (16 MiB); beyond it give() frees.
  static constexpr std::size_t kept_max = 1024;

  // A buffer holding a copy of `bytes`: recycled when bytes.size() is in
  // [pooled_min, buffer_bytes], else freshly allocated.
  static std::vector<std::byte> copy_of(std::span<const std::byte> bytes) {
    std::vector<std::byte> buffer;
    if (bytes.size() >= pooled_min && bytes.size() <= buffer_bytes) buffer = take();
    buffer.assign(bytes.begin(), bytes.end());
    return buffer;
  }

  // A buffer of buffer_bytes zeroes, recycled when one is free.
  static std::vector<std::byte> zeroes() {
    std::vector<std::byte> buffer = take();
    buffer.resize(buffer_bytes);
    return buffer;
  }

  // Returns a buffer for reuse (any buffer: those of another capacity are simply freed).
  static void give(std::vector<std::byte>&& buffer) {
    std::vector<std::vector<std::byte>>& free = buffers();
    if (buffer.capacity() != buffer_bytes || free.size() >= kept_max) {
      std::vector<std::byte>().swap(buffer);
      return;
    }
    buffer.clear();
    free.push_back(std::move(buffer));
  }

 private:
  // An empty buffer of capacity buffer_bytes.
  static std::vector<std::byte> take() {
    std::vector<std::vector<std::byte>>& free = buffers();
    std::vector<std::byte> buffer;
    if (free.empty()) {
      buffer.reserve(buffer_bytes);
    } else {
      buffer = std::move(free.back());
      free.pop_back();
    }
    return buffer;
  }

  static std::vector<std::vector<std::byte>>& buffers() {
    thread_local std::vector<std::vector<std::byte>> free;
    return free;
  }
};

}  // namespace hast::sim
