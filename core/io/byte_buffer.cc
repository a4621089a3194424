// The thread's ByteBufferCache: who owns it, and what happens at thread exit. See
// byte_buffer.h for the model.
//
// C++ destroys a thread's thread_local objects in the reverse order of their
// construction, and the process's static objects after the main thread's thread_locals,
// so a ByteBuffer can be freed after its thread's cache was destroyed. A function-local
// thread_local cache would then be used dead. Instead the cache is reached through
// byte_buffer_cache_slot, a thread_local of plain data (valid for the thread's whole
// life), and the object that owns the cache (ThreadCache) empties the slot and marks it
// destroyed before the cache goes. A buffer freed later goes to the heap; one allocated
// later comes from it. A thread whose first buffer comes while its thread_locals are being
// destroyed makes its cache then (the C library runs that destructor too); one made by a
// static destructor on the main thread is never destroyed, and its few blocks go with the
// process.
#include "core/io/byte_buffer.h"

namespace hast::detail {
namespace {

// The thread's cache and its registration in the slot, made on the thread's first use.
class ThreadCache {
 public:
  ThreadCache() {
    HAST_ASSERT(byte_buffer_cache_slot.cache == nullptr);
    HAST_ASSERT(!byte_buffer_cache_slot.destroyed);
    byte_buffer_cache_slot.cache = &cache_;
  }
  ~ThreadCache() {
    // Before cache_'s destructor frees the blocks: nothing reaches it from now on.
    HAST_ASSERT(byte_buffer_cache_slot.cache == &cache_);
    byte_buffer_cache_slot.cache = nullptr;
    byte_buffer_cache_slot.destroyed = true;
  }
  ThreadCache(const ThreadCache&) = delete;
  ThreadCache& operator=(const ThreadCache&) = delete;

 private:
  ByteBufferCache cache_;
};

}  // namespace

ByteBufferCache::~ByteBufferCache() {
  for (std::size_t index = 0; index < size_classes; index++) {
    for (std::byte* block : free_[index])
      heap_free(block, (index + 1) * page_bytes);
  }
}

ByteBufferCache* ByteBufferCache::make_local() {
  HAST_ASSERT(byte_buffer_cache_slot.cache == nullptr);
  HAST_ASSERT(!byte_buffer_cache_slot.destroyed);
  thread_local ThreadCache owner;  // fills the slot
  HAST_ASSERT(byte_buffer_cache_slot.cache != nullptr);
  return byte_buffer_cache_slot.cache;
}

}  // namespace hast::detail
