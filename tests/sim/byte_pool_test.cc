// BytePool: recycled buffers come back holding exactly the bytes asked for (never a byte
// of their previous use), sizes outside the pooled range bypass the pool, and the pool
// really recycles (the same memory comes back), which is what the speed-up rests on.
#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <thread>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "sim/byte_pool.h"

using hast::sim::BytePool;
using hast::sim::PoolBytes;

namespace {

PoolBytes pattern(std::size_t size, unsigned seed) {
  PoolBytes bytes(size);
  for (std::size_t i = 0; i < size; i++)
    bytes[i] = static_cast<std::byte>((i * 131 + seed) & 0xff);
  return bytes;
}

bool late_list_gone = false;
bool late_buffer_ok = false;

// Made before the thread's first pool use, so destroyed after the pool's list of kept
// buffers: what it gives back then must not go into the dead list.
struct LateGiver {
  PoolBytes held;
  ~LateGiver() {
    late_list_gone = hast::sim::detail::byte_pool_slot.destroyed;
    BytePool::give(std::move(held));
    PoolBytes late = BytePool::copy_of(pattern(BytePool::buffer_bytes, 9));
    late_buffer_ok = late == pattern(BytePool::buffer_bytes, 9);
    BytePool::give(std::move(late));
  }
};

}  // namespace

TEST_CASE("byte pool: buffers given back after the thread's list went are freed",
          "[sim][byte_pool]") {
  pid_t child = ::fork();  // in a child: a failure would be a use after free
  REQUIRE(child >= 0);
  if (child == 0) {
    std::thread([] {
      thread_local LateGiver giver;  // made first: destroyed last
      BytePool::give(BytePool::blank());  // makes the list and keeps a buffer in it
      giver.held = BytePool::copy_of(pattern(BytePool::buffer_bytes, 3));
    }).join();
    ::_exit(late_list_gone && late_buffer_ok ? 0 : 3);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("byte pool: a recycled buffer holds only the new bytes", "[sim][byte_pool]") {
  PoolBytes first = BytePool::copy_of(pattern(BytePool::buffer_bytes, 1));
  CHECK(first == pattern(BytePool::buffer_bytes, 1));
  CHECK(first.capacity() == BytePool::buffer_bytes);
  const std::byte* memory = first.data();
  BytePool::give(std::move(first));

  // The buffer given last comes back first, shorter this time: nothing old shows.
  const PoolBytes shorter = pattern(BytePool::pooled_min, 2);
  PoolBytes second = BytePool::copy_of(shorter);
  CHECK(second.data() == memory);
  CHECK(second == shorter);
  BytePool::give(std::move(second));

  PoolBytes zeroes = BytePool::zeroes();
  CHECK(zeroes.data() == memory);
  CHECK(zeroes == PoolBytes(BytePool::buffer_bytes, std::byte{0}));
  BytePool::give(std::move(zeroes));
}

TEST_CASE("byte pool: sizes outside the pooled range get exact buffers", "[sim][byte_pool]") {
  BytePool::give(BytePool::zeroes());  // at least one buffer is free
  const PoolBytes small = pattern(BytePool::pooled_min - 512, 3);
  PoolBytes copy = BytePool::copy_of(small);
  CHECK(copy == small);
  CHECK(copy.capacity() < BytePool::buffer_bytes);
  const PoolBytes large = pattern(BytePool::buffer_bytes + 512, 4);
  CHECK(BytePool::copy_of(large) == large);
  CHECK(BytePool::copy_of({}).empty());
  // A buffer of another capacity is freed, not kept: the next take is a pooled one.
  BytePool::give(std::move(copy));
  CHECK(BytePool::copy_of(pattern(BytePool::buffer_bytes, 5)).capacity() == BytePool::buffer_bytes);
}

TEST_CASE("byte pool: buffers of 4 KiB or more start on a cache line", "[sim][byte_pool]") {
  PoolBytes pooled = BytePool::copy_of(pattern(BytePool::buffer_bytes, 6));
  PoolBytes large = BytePool::copy_of(pattern(BytePool::buffer_bytes * 3 + 512, 7));
  PoolBytes zeroes = BytePool::zeroes();
  for (const PoolBytes* buffer : {&pooled, &large, &zeroes})
    CHECK(reinterpret_cast<std::uintptr_t>(buffer->data()) % 64 == 0);
  CHECK(large == pattern(BytePool::buffer_bytes * 3 + 512, 7));
  BytePool::give(std::move(pooled));
  BytePool::give(std::move(zeroes));
}
