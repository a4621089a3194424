// SpareObjects<T>: objects handed to a request's fiber behind a plain pointer (a fiber's
// body is a std::function, which copies what it captures and allocates beyond two
// pointers), each made once and reused, so steady traffic allocates none.
//
// Model: take() hands out an object no one holds (made the first time one is needed);
// give_back() resets it to T{} at once (what it held, a buffer say, goes then, as if it
// were destroyed) and makes it available again. At most `max` are ever made (asserted:
// the caller bounds the objects in use, e.g. by a semaphore). Addresses stay valid for
// the life of the SpareObjects. Not thread-safe: one scheduler's fibers.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "core/assert.h"

namespace hast::fiber {

template <typename T>
class SpareObjects {
 public:
  explicit SpareObjects(std::size_t max) : max_(max) {}

  T& take() {
    if (unused_.empty()) {
      HAST_ASSERT_MSG(made_.size() < max_, "more than {} objects in use", max_);
      made_.push_back(std::make_unique<T>());
      unused_.push_back(made_.back().get());
    }
    T* object = unused_.back();
    unused_.pop_back();
    return *object;
  }

  // `object` came from take() and is not given back yet.
  void give_back(T& object) {
    object = T{};
    unused_.push_back(&object);
    HAST_ASSERT(unused_.size() <= made_.size());
  }

 private:
  std::size_t max_;
  std::vector<std::unique_ptr<T>> made_;
  std::vector<T*> unused_;
};

}  // namespace hast::fiber
