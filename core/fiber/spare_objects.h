// SpareObjects<T>: objects handed to a request's fiber behind a plain pointer (a fiber's
// body is a std::function, which copies what it captures and allocates beyond two
// pointers), each made once and reused, so steady traffic allocates none.
//
// Model: take() hands out an object no one holds (made the first time one is needed);
// give_back() resets it to T{} at once (what it held, a buffer say, goes then, as if it
// were destroyed) and makes it available again. At most `max` are ever made (asserted:
// the caller bounds the objects in use, e.g. by a semaphore). Giving back an object twice,
// or one that did not come from this pool, is a bug and asserted: two holders of one
// object would corrupt each other's requests silently. Addresses stay valid for the life
// of the SpareObjects. Not thread-safe: one scheduler's fibers.
#pragma once

#include <cstddef>
#include <functional>
#include <vector>

#include "core/assert.h"

namespace hast::fiber {

template <typename T>
class SpareObjects {
 public:
  // Reserves room for `max` objects at once, so that making one never moves the others.
  explicit SpareObjects(std::size_t max) : max_(max) {
    HAST_ASSERT(max_ > 0);
    objects_.reserve(max_);
    lent_.reserve(max_);
  }
  SpareObjects(const SpareObjects&) = delete;
  SpareObjects& operator=(const SpareObjects&) = delete;

  T& take() {
    if (unused_.empty()) {
      HAST_ASSERT_MSG(objects_.size() < max_, "more than {} objects in use", max_);
      objects_.emplace_back();  // within the reserved room: no object moves
      lent_.push_back(false);
      unused_.push_back(objects_.size() - 1);
    }
    std::size_t index = unused_.back();
    unused_.pop_back();
    HAST_ASSERT(!lent_[index]);
    lent_[index] = true;
    return objects_[index];
  }

  // `object` came from take() and is not given back yet.
  void give_back(T& object) {
    std::size_t index = index_of(object);
    HAST_ASSERT_MSG(lent_[index], "object {} given back twice", index);
    object = T{};  // may run destructors that use the pool: still lent meanwhile
    lent_[index] = false;
    unused_.push_back(index);
    HAST_ASSERT(unused_.size() <= objects_.size());
  }

 private:
  std::size_t index_of(const T& object) const {
    const T* first = objects_.data();
    bool ours = std::less_equal<const T*>{}(first, &object) &&
                std::less<const T*>{}(&object, first + objects_.size());
    HAST_ASSERT_MSG(ours, "an object given back that did not come from this pool");
    return static_cast<std::size_t>(&object - first);
  }

  std::size_t max_;
  std::vector<T> objects_;   // capacity max_: addresses never change
  std::vector<bool> lent_;   // by index: handed out by take(), not given back yet
  std::vector<std::size_t> unused_;  // indexes, the last given back first
};

}  // namespace hast::fiber
