// hastd's page-aligned allocations come from BufferPool::process() (real/buffer_pool.h),
// so that request buffers (ByteBuffer, core/io/byte_buffer.h: aligned to a page) sit in
// memory the rings register, and disk I/O on them needs no page pinning per operation.
//
// Linked into hastd alone (real/CMakeLists.txt), not into the library: tests and hastctl
// keep the standard allocator. Replaces the aligned forms of operator new and delete that
// the others (array, nothrow, sized) forward to in libstdc++. Alignments below a page
// and sizes the pool does not serve go to aligned_alloc and free, as libstdc++ does.
// Sanitizer builds keep the standard allocator, whose checks (use after free) would not
// see inside pool blocks.
#include "core/sanitizer.h"

#if !HAST_ASAN
#include <cstddef>
#include <cstdlib>
#include <new>

#include "real/buffer_pool.h"

namespace {

void* allocate_aligned(std::size_t size, std::align_val_t alignment) {
  auto align = static_cast<std::size_t>(alignment);
  if (align == hast::real::BufferPool::block_min) {
    if (void* block = hast::real::BufferPool::process().allocate(size)) return block;
  }
  // aligned_alloc wants a size that is a multiple of the alignment.
  std::size_t rounded = size == 0 ? align : (size + align - 1) & ~(align - 1);
  return std::aligned_alloc(align, rounded);
}

void release_aligned(void* block) {
  if (block == nullptr) return;
  if (!hast::real::BufferPool::process().deallocate(block)) std::free(block);
}

}  // namespace

void* operator new(std::size_t size, std::align_val_t alignment) {
  void* block = allocate_aligned(size, alignment);
  if (block == nullptr) throw std::bad_alloc();
  return block;
}

void* operator new(std::size_t size, std::align_val_t alignment, const std::nothrow_t&) noexcept {
  return allocate_aligned(size, alignment);
}

void operator delete(void* block, std::align_val_t) noexcept { release_aligned(block); }

void operator delete(void* block, std::size_t, std::align_val_t) noexcept {
  release_aligned(block);
}

void operator delete(void* block, std::align_val_t, const std::nothrow_t&) noexcept {
  release_aligned(block);
}

#endif  // !HAST_ASAN
