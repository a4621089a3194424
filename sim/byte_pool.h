// BytePool: recycled byte buffers for the simulator's data path.
//
// A simulation moves every client byte through 16 KiB network segments and frees them as
// fast as it allocates them (disk images keep the units they cannot store compactly in
// such buffers too, sparse_image.h). glibc serves that size from its general bins (a
// search, a split and a coalesce each time) and hands back memory that is often cold; a
// per-thread LIFO list of buffers of one capacity costs a pointer move and returns the
// buffer freed last, still in cache. Only memory is recycled: a buffer's old bytes are
// always overwritten before they are read (take() returns an empty vector), so nothing a
// run does depends on the pool.
//
// Buffers start on a cache line (PoolBytes): most of a run's copies go into or out of
// them, and a copy whose destination is off a 64-byte boundary is up to a third slower.
#pragma once

#include <cstddef>
#include <cstring>
#include <new>
#include <span>
#include <utility>
#include <vector>

namespace hast::sim {

// An allocator whose blocks of 4 KiB or more start on a 64-byte boundary (smaller ones,
// such as message headers, keep the allocator's fast path). Growing a vector leaves the
// new elements uninitialised (resize() does not zero): every user fills them right away.
template <typename T>
struct CacheLineAllocator {
  using value_type = T;
  static constexpr std::align_val_t alignment{64};
  static constexpr std::size_t aligned_min = 4096;  // bytes

  CacheLineAllocator() = default;
  template <typename U>
  CacheLineAllocator(const CacheLineAllocator<U>&) noexcept {}  // NOLINT: rebinding

  // deallocate() gets the count allocate() got, so both take the same branch.
  T* allocate(std::size_t count) {
    const std::size_t bytes = count * sizeof(T);
    return static_cast<T*>(bytes >= aligned_min ? ::operator new(bytes, alignment)
                                                : ::operator new(bytes));
  }
  void deallocate(T* pointer, std::size_t count) noexcept {
    const std::size_t bytes = count * sizeof(T);
    if (bytes >= aligned_min) {
      ::operator delete(pointer, bytes, alignment);
    } else {
      ::operator delete(pointer, bytes);
    }
  }
  template <typename U>
  void construct(U* pointer) noexcept {
    ::new (static_cast<void*>(pointer)) U;
  }
  template <typename U, typename... Args>
  void construct(U* pointer, Args&&... args) {
    ::new (static_cast<void*>(pointer)) U(std::forward<Args>(args)...);
  }
  friend bool operator==(const CacheLineAllocator&, const CacheLineAllocator&) { return true; }
};

// The bytes of a network segment, or the raw units of a disk image chunk.
using PoolBytes = std::vector<std::byte, CacheLineAllocator<std::byte>>;

namespace detail {
// How a thread reaches BytePool's kept buffers (BytePool::buffers()).
struct BytePoolSlot {
  std::vector<PoolBytes>* free = nullptr;
  bool destroyed = false;  // the thread's list was made and is gone
};
inline constinit thread_local BytePoolSlot byte_pool_slot{};
}  // namespace detail

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
  static PoolBytes copy_of(std::span<const std::byte> bytes) {
    PoolBytes buffer;
    if (bytes.size() >= pooled_min && bytes.size() <= buffer_bytes) buffer = take();
    buffer.resize(bytes.size());  // uninitialised, then copied over whole
    if (!bytes.empty()) std::memcpy(buffer.data(), bytes.data(), bytes.size());
    return buffer;
  }

  // A buffer of buffer_bytes bytes, uninitialised (the caller writes before it reads),
  // recycled when one is free.
  static PoolBytes blank() {
    PoolBytes buffer = take();
    buffer.resize(buffer_bytes);
    return buffer;
  }

  // A buffer of buffer_bytes zeroes, recycled when one is free.
  static PoolBytes zeroes() {
    PoolBytes buffer = take();
    buffer.resize(buffer_bytes);
    std::memset(buffer.data(), 0, buffer_bytes);
    return buffer;
  }

  // Returns a buffer for reuse (any buffer: those of another capacity are simply freed).
  static void give(PoolBytes&& buffer) {
    std::vector<PoolBytes>* free = buffers();
    if (free == nullptr || buffer.capacity() != buffer_bytes || free->size() >= kept_max) {
      PoolBytes().swap(buffer);
      return;
    }
    buffer.clear();
    free->push_back(std::move(buffer));
  }

 private:
  // An empty buffer of capacity buffer_bytes.
  static PoolBytes take() {
    std::vector<PoolBytes>* free = buffers();
    PoolBytes buffer;
    if (free == nullptr || free->empty()) {
      buffer.reserve(buffer_bytes);
    } else {
      buffer = std::move(free->back());
      free->pop_back();
    }
    return buffer;
  }

  // The thread's kept buffers, reached through plain data valid for the thread's whole
  // life (as ByteBuffer's cache, core/io/byte_buffer.cc): null once the list went with the
  // thread's other thread_locals, so a buffer given back later (by a thread_local or static
  // destroyed after it) is freed instead of pushed into a dead vector.
  struct Owner {
    std::vector<PoolBytes> free;
    Owner() { detail::byte_pool_slot.free = &free; }
    ~Owner() { detail::byte_pool_slot = detail::BytePoolSlot{nullptr, true}; }
  };
  static std::vector<PoolBytes>* buffers() {
    detail::BytePoolSlot& slot = detail::byte_pool_slot;
    if (slot.free != nullptr) [[likely]]
      return slot.free;
    if (slot.destroyed) return nullptr;
    thread_local Owner owner;
    return slot.free;
  }
};

}  // namespace hast::sim
