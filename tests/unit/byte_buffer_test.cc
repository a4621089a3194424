// ByteBuffer (core/io/byte_buffer.h): alignment, sizes, moves, fills and copies.
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "core/io/byte_buffer.h"

using hast::ByteBuffer;

namespace {

bool aligned(const std::byte* data) {
  return reinterpret_cast<std::uintptr_t>(data) % hast::byte_buffer_alignment == 0;
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

TEST_CASE("ByteBuffer: freed storage is reused for a buffer of the same page count, within bounds",
          "[unit][io]") {
  using hast::detail::ByteBufferCache;
  if (!hast::detail::byte_buffer_cache_enabled) return;  // sanitizer builds bypass the cache
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
  std::size_t before = ByteBufferCache::local().bytes();
  {
    std::vector<ByteBuffer> burst;
    for (std::size_t i = 0; i < ByteBufferCache::blocks_per_class_max + 8; i++)
      burst.emplace_back(3 * 4096);
  }
  std::size_t kept = ByteBufferCache::local().bytes() - before;
  CHECK(kept == ByteBufferCache::blocks_per_class_max * 3 * 4096);
  CHECK(ByteBufferCache::local().bytes() <= ByteBufferCache::bytes_max);
  // Larger buffers are not cached: exact sizes from the heap.
  CHECK(ByteBufferCache::capacity_of(ByteBufferCache::cached_bytes_max + 1) ==
        ByteBufferCache::cached_bytes_max + 1);
}
