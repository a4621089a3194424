// BytePool: recycled buffers come back holding exactly the bytes asked for (never a byte
// of their previous use), sizes outside the pooled range bypass the pool, and the pool
// really recycles (the same memory comes back), which is what the speed-up rests on.
#include <cstddef>
#include <vector>

#include <catch2/catch.hpp>

#include "sim/byte_pool.h"

using hast::sim::BytePool;

namespace {

std::vector<std::byte> pattern(std::size_t size, unsigned seed) {
  std::vector<std::byte> bytes(size);
  for (std::size_t i = 0; i < size; i++)
    bytes[i] = static_cast<std::byte>((i * 131 + seed) & 0xff);
  return bytes;
}

}  // namespace

TEST_CASE("byte pool: a recycled buffer holds only the new bytes", "[sim][byte_pool]") {
  std::vector<std::byte> first = BytePool::copy_of(pattern(BytePool::buffer_bytes, 1));
  CHECK(first == pattern(BytePool::buffer_bytes, 1));
  CHECK(first.capacity() == BytePool::buffer_bytes);
  const std::byte* memory = first.data();
  BytePool::give(std::move(first));

  // The buffer given last comes back first, shorter this time: nothing old shows.
  const std::vector<std::byte> shorter = pattern(BytePool::pooled_min, 2);
  std::vector<std::byte> second = BytePool::copy_of(shorter);
  CHECK(second.data() == memory);
  CHECK(second == shorter);
  BytePool::give(std::move(second));

  std::vector<std::byte> zeroes = BytePool::zeroes();
  CHECK(zeroes.data() == memory);
  CHECK(zeroes == std::vector<std::byte>(BytePool::buffer_bytes));
  BytePool::give(std::move(zeroes));
}

TEST_CASE("byte pool: sizes outside the pooled range get exact buffers", "[sim][byte_pool]") {
  BytePool::give(BytePool::zeroes());  // at least one buffer is free
  const std::vector<std::byte> small = pattern(BytePool::pooled_min - 512, 3);
  std::vector<std::byte> copy = BytePool::copy_of(small);
  CHECK(copy == small);
  CHECK(copy.capacity() < BytePool::buffer_bytes);
  const std::vector<std::byte> large = pattern(BytePool::buffer_bytes + 512, 4);
  CHECK(BytePool::copy_of(large) == large);
  CHECK(BytePool::copy_of({}).empty());
  // A buffer of another capacity is freed, not kept: the next take is a pooled one.
  BytePool::give(std::move(copy));
  CHECK(BytePool::copy_of(pattern(BytePool::buffer_bytes, 5)).capacity() ==
        BytePool::buffer_bytes);
}
