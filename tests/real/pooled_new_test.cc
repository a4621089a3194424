// real/pooled_new.cc, linked into this test binary as into hastd: page-aligned allocations
// (every ByteBuffer) land in BufferPool::process(), which the rings register; others and
// blocks the pool does not serve keep the standard allocator. Its own binary, because the
// replacement operator new applies to everything linked with it.
#include <catch2/catch.hpp>

#include <cstddef>
#include <memory>
#include <new>

#include "core/io/byte_buffer.h"
#include "core/sanitizer.h"
#include "real/buffer_pool.h"

namespace hast::real {
namespace {

bool in_pool(const void* data, std::size_t size) {
  return BufferPool::process().chunk_of(data, size) >= 0;
}

TEST_CASE("pooled new: page-aligned allocations come from the process's pool", "[real]") {
  if (HAST_ASAN) return;  // sanitizer builds keep the standard allocator (pooled_new.cc)
  ByteBuffer request(64 * 1024);
  CHECK(in_pool(request.data(), request.size()));
  ByteBuffer large(BufferPool::chunk_bytes);  // the largest block the pool serves
  CHECK(in_pool(large.data(), large.size()));
  void* raw = ::operator new(3 * BufferPool::block_min, std::align_val_t{BufferPool::block_min});
  CHECK(in_pool(raw, 3 * BufferPool::block_min));
  ::operator delete(raw, std::align_val_t{BufferPool::block_min});
}

TEST_CASE("pooled new: other alignments and oversized blocks keep the standard allocator",
          "[real]") {
  auto plain = std::make_unique<std::byte[]>(8192);
  CHECK_FALSE(in_pool(plain.get(), 8192));
  void* small = ::operator new(256, std::align_val_t{64});
  CHECK_FALSE(in_pool(small, 256));
  ::operator delete(small, std::align_val_t{64});
  ByteBuffer oversized(BufferPool::chunk_bytes + 1);
  CHECK_FALSE(in_pool(oversized.data(), oversized.size()));
}

}  // namespace
}  // namespace hast::real
