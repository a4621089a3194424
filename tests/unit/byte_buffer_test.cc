// ByteBuffer (core/io/byte_buffer.h): alignment, sizes, moves, fills and copies; the
// per-thread cache of freed storage: reuse, its limits, the capacity a buffer carries
// through moves and resets, and buffers freed after their thread's cache was destroyed.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <span>
#include <thread>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "core/io/byte_buffer.h"

using hast::ByteBuffer;
using hast::detail::ByteBufferCache;

namespace {

bool aligned(const std::byte* data) {
  return reinterpret_cast<std::uintptr_t>(data) % hast::byte_buffer_alignment == 0;
}

// Runs `body` on a new thread, so with an empty cache whatever ran before on this one
// (the main thread waits meanwhile: the body's checks never run concurrently).
template <typename Body>
void on_fresh_thread(Body body) {
  std::thread(body).join();
}

}  // namespace

TEST_CASE("ByteBuffer: storage is aligned for direct I/O at every size", "[unit][io]") {
  for (std::size_t size : {1, 16, 512, 4096, 4097, 128 * 1024, 1024 * 1024 + 512}) {
    ByteBuffer buffer(size);
    CHECK(buffer.size() == size);
    CHECK(!buffer.empty());
    CHECK(aligned(buffer.data()));
    std::span<std::byte> whole = buffer;  // converts like a vector
    CHECK(whole.size() == size);
    CHECK(buffer.end() - buffer.begin() == static_cast<std::ptrdiff_t>(size));
  }
  ByteBuffer empty;
  CHECK(empty.empty());
  CHECK(empty.data() == nullptr);
  CHECK(ByteBuffer(0).data() == nullptr);
}

TEST_CASE("ByteBuffer: fill, copy_of, reset and moves", "[unit][io]") {
  ByteBuffer filled(4096, std::byte{0xab});
  for (std::byte b : filled)
    REQUIRE(b == std::byte{0xab});
  std::vector<std::byte> source{std::byte{1}, std::byte{2}, std::byte{3}};
  ByteBuffer copy = ByteBuffer::copy_of(source);
  CHECK(std::vector<std::byte>(copy.begin(), copy.end()) == source);
  CHECK(aligned(copy.data()));

  const std::byte* storage = filled.data();
  ByteBuffer moved = std::move(filled);
  CHECK(moved.data() == storage);
  CHECK(filled.empty());  // NOLINT(bugprone-use-after-move): a moved-from buffer is empty
  moved.reset(4096);
  CHECK(moved.data() == storage);  // same size: kept
  moved.reset(8192);
  CHECK(moved.size() == 8192);
  CHECK(aligned(moved.data()));
  moved = std::move(copy);
  CHECK(moved.size() == 3);
  CHECK(moved[2] == std::byte{3});
  moved.clear();
  CHECK(moved.empty());
}

TEST_CASE("ByteBuffer: freed storage is reused for a buffer of the same page count",
          "[unit][io]") {
  if (!hast::detail::byte_buffer_cache_enabled) return;  // sanitizer builds bypass the cache
  on_fresh_thread([] {
    const std::byte* first = nullptr;
    {
      ByteBuffer buffer(4096);
      first = buffer.data();
    }
    ByteBuffer again(4000);  // one page, like the 4096 bytes before
    CHECK(again.data() == first);
    CHECK(aligned(again.data()));
    again.reset(100);  // still one page: the storage stays
    CHECK(again.data() == first);
    CHECK(again.size() == 100);
    // Bounded: a burst of frees keeps at most blocks_per_class_max blocks of a size.
    ByteBufferCache* cache = ByteBufferCache::local();
    CHECK(cache != nullptr);  // not REQUIRE: it would throw out of the thread (terminate)
    if (cache == nullptr) return;
    CHECK(cache->bytes() == 0);
    {
      std::vector<ByteBuffer> burst;
      for (std::size_t i = 0; i < ByteBufferCache::blocks_per_class_max + 8; i++)
        burst.emplace_back(3 * 4096);
    }
    CHECK(cache->bytes() == ByteBufferCache::blocks_per_class_max * 3 * 4096);
    // Larger buffers are not cached: exact sizes from the heap.
    CHECK(ByteBufferCache::capacity_of(ByteBufferCache::cached_bytes_max + 1) ==
          ByteBufferCache::cached_bytes_max + 1);
    {
      ByteBuffer large(ByteBufferCache::cached_bytes_max + 1);
    }
    CHECK(cache->bytes() == ByteBufferCache::blocks_per_class_max * 3 * 4096);
  });
}

namespace {

std::byte* heap_block(std::size_t capacity) {
  return static_cast<std::byte*>(
      ::operator new(capacity, std::align_val_t{hast::byte_buffer_alignment}));
}

void heap_free(std::byte* block) {
  ::operator delete(block, std::align_val_t{hast::byte_buffer_alignment});
}

}  // namespace

TEST_CASE("ByteBufferCache: at most blocks_per_class_max of a size and bytes_max in all",
          "[unit][io]") {
  if (!hast::detail::byte_buffer_cache_enabled) return;
  constexpr std::size_t largest = ByteBufferCache::cached_bytes_max;
  static_assert(ByteBufferCache::blocks_per_class_max * largest == ByteBufferCache::bytes_max);
  ByteBufferCache cache;  // its own, not the thread's: frees what it keeps when it goes
  std::vector<std::byte*> blocks;
  for (std::size_t i = 0; i < ByteBufferCache::blocks_per_class_max; i++) {
    blocks.push_back(heap_block(largest));
    REQUIRE(cache.keep(blocks.back(), largest));
  }
  CHECK(cache.bytes() == ByteBufferCache::bytes_max);
  // Full in bytes: even a one-page block is refused.
  std::byte* page = heap_block(4096);
  CHECK(!cache.keep(page, 4096));
  // One taken (the last kept comes first): room for the page again.
  CHECK(cache.take(largest) == blocks.back());
  CHECK(cache.take(4096) == nullptr);  // none of that size kept
  CHECK(cache.keep(page, 4096));
  CHECK(cache.bytes() == ByteBufferCache::bytes_max - largest + 4096);
  heap_free(blocks.back());
}

TEST_CASE("ByteBufferCache: refuses capacities it does not cache", "[unit][io]") {
  ByteBufferCache cache;
  std::byte* block = heap_block(8192);
  // No size class: nothing, part of a page, beyond the largest class.
  for (std::size_t capacity : {std::size_t{0}, std::size_t{100}, std::size_t{4097},
                               ByteBufferCache::cached_bytes_max + 4096}) {
    CHECK(!ByteBufferCache::cacheable(capacity));
    CHECK(!cache.keep(block, capacity));
    CHECK(cache.take(capacity) == nullptr);
  }
  CHECK(cache.bytes() == 0);
  heap_free(block);
}

// A buffer's capacity is derived from its size (capacity_of), so reset() may keep the
// storage only for a size of the same capacity: a shrink to fewer pages must hand the
// whole old block back, or the cache would file it under the wrong size.
TEST_CASE("ByteBuffer: the storage's capacity holds through moves and resets", "[unit][io]") {
  if (!hast::detail::byte_buffer_cache_enabled) return;
  on_fresh_thread([] {
    ByteBufferCache* cache = ByteBufferCache::local();
    CHECK(cache != nullptr);  // not REQUIRE: it would throw out of the thread (terminate)
    if (cache == nullptr) return;
    // Three pages, resized within three pages: the same storage, which goes back to the
    // cache whole by way of a move construction and a move assignment.
    ByteBuffer buffer(3 * 4096 - 5);
    const std::byte* storage = buffer.data();
    buffer.reset(3 * 4096 - 4000);  // still three pages
    CHECK(buffer.data() == storage);
    ByteBuffer moved(std::move(buffer));
    ByteBuffer assigned;
    assigned = std::move(moved);
    CHECK(moved.empty());  // NOLINT(bugprone-use-after-move): a moved-from buffer is empty
    CHECK(moved.data() == nullptr);
    assigned.clear();
    CHECK(cache->bytes() == 3 * 4096);
    ByteBuffer next(2 * 4096 + 1);  // three pages: the same storage
    CHECK(next.data() == storage);
    CHECK(cache->bytes() == 0);
    // Shrunk to one page: new storage, and the three pages go back whole.
    next.reset(100);
    CHECK(next.data() != storage);
    CHECK(cache->bytes() == 3 * 4096);
    ByteBuffer again(3 * 4096);
    CHECK(again.data() == storage);
    // A moved-from buffer takes new storage like a fresh one.
    moved.reset(4096);
    CHECK(moved.size() == 4096);
    CHECK(aligned(moved.data()));
  });
}

namespace {

// Observations from inside thread exit, written by one thread and read after its join.
struct ExitRecord {
  bool cache_gone = false;      // local() was null in the late destructor
  bool late_buffer_ok = false;  // a buffer allocated there was usable
};
ExitRecord exit_record;

// A thread_local made before the thread's cache, so destroyed after it (thread_local
// objects go in the reverse order of their construction).
struct LateHolder {
  ByteBuffer buffer;
  ~LateHolder() {
    exit_record.cache_gone = ByteBufferCache::local() == nullptr;
    buffer.clear();  // after the cache: to the heap
    ByteBuffer late(4096, std::byte{7});  // from the heap, and back to it
    exit_record.late_buffer_ok =
        late.size() == 4096 && late[4095] == std::byte{7} && aligned(late.data());
  }
};

// A thread_local whose destructor is the thread's first ByteBuffer user: the cache is made
// during thread exit, and destroyed then too.
struct FirstUseAtExit {
  ~FirstUseAtExit() {
    ByteBuffer buffer(4096);
    buffer.reset(2 * 4096);
  }
};

}  // namespace

TEST_CASE("ByteBuffer: buffers freed after their thread's cache was destroyed go to the heap",
          "[unit][io]") {
  // In a child process: without the slot, the late release writes into the dead cache, a
  // use after free that may well go unnoticed; the child's own checks (cache_gone) fail.
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    std::thread([] {
      thread_local LateHolder holder;  // made first: destroyed last
      { ByteBuffer warm(4096); }       // makes the cache, and gives it a kept block
      holder.buffer = ByteBuffer(4096);
      holder.buffer.reset(3 * 4096);
    }).join();
    std::thread([] { thread_local FirstUseAtExit user; }).join();
    // Sanitizer builds never make the cache before the late destructor asks for it.
    bool ok = (exit_record.cache_gone || !hast::detail::byte_buffer_cache_enabled) &&
              exit_record.late_buffer_ok;
    std::_Exit(ok ? 0 : 3);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}
