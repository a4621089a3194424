// EventAction: what a world event runs, a move-only `void()` callable.
//
// A simulation schedules an event for nearly every step of every operation (disk
// completions, network deliveries, timers), and most of their callables capture a few
// pointers and ids. std::function stores those over 16 bytes on the heap; EventAction keeps
// any nothrow-movable callable of up to inline_bytes in place, so scheduling one costs no
// allocation. Larger callables go to the heap, as before. Behaviour is that of calling the
// callable: nothing here decides anything a run does.
#pragma once

#include <cstddef>
#include <cstring>
#include <new>
#include <type_traits>
#include <utility>

#include "core/assert.h"

namespace hast::sim {

class EventAction {
 public:
  static constexpr std::size_t inline_bytes = 80;

  EventAction() = default;

  // Wraps `callable` (a lambda, a function pointer, a non-empty std::function...).
  template <typename F, typename D = std::decay_t<F>,
            typename = std::enable_if_t<!std::is_same_v<D, EventAction> &&
                                        std::is_invocable_r_v<void, D&>>>
  EventAction(F&& callable) {  // NOLINT(google-explicit-constructor): lambdas convert
    if constexpr (std::is_constructible_v<bool, const D&>) {
      HAST_ASSERT_MSG(static_cast<bool>(callable), "empty event action");
    }
    if constexpr (stored_inline<D>()) {
      ::new (static_cast<void*>(storage_)) D(std::forward<F>(callable));
      ops_ = &inline_ops<D>;
    } else {
      D* owned = new D(std::forward<F>(callable));
      std::memcpy(storage_, &owned, sizeof owned);
      ops_ = &heap_ops<D>;
    }
  }

  EventAction(EventAction&& other) noexcept { take(other); }
  EventAction& operator=(EventAction&& other) noexcept {
    if (this != &other) {
      reset();
      take(other);
    }
    return *this;
  }
  EventAction(const EventAction&) = delete;
  EventAction& operator=(const EventAction&) = delete;
  ~EventAction() { reset(); }

  explicit operator bool() const { return ops_ != nullptr; }

  // Runs the callable. The action must not be empty.
  void operator()() {
    HAST_ASSERT(ops_ != nullptr);
    ops_->invoke(storage_);
  }

  void reset() {
    if (ops_ == nullptr) return;
    ops_->destroy(storage_);
    ops_ = nullptr;
  }

 private:
  struct Ops {
    void (*invoke)(void* storage);
    // Move-constructs the callable held at `from` into `to` and destroys the one at `from`.
    void (*relocate)(void* from, void* to);
    void (*destroy)(void* storage);
  };

  template <typename D>
  static constexpr bool stored_inline() {
    return sizeof(D) <= inline_bytes && alignof(D) <= alignof(std::max_align_t) &&
           std::is_nothrow_move_constructible_v<D>;
  }

  template <typename D>
  static D* heap_pointer(void* storage) {
    D* pointer = nullptr;
    std::memcpy(&pointer, storage, sizeof pointer);
    return pointer;
  }

  template <typename D>
  static constexpr Ops inline_ops = {
      [](void* storage) { (*std::launder(static_cast<D*>(storage)))(); },
      [](void* from, void* to) {
        D* source = std::launder(static_cast<D*>(from));
        ::new (to) D(std::move(*source));
        source->~D();
      },
      [](void* storage) { std::launder(static_cast<D*>(storage))->~D(); },
  };

  template <typename D>
  static constexpr Ops heap_ops = {
      [](void* storage) { (*heap_pointer<D>(storage))(); },
      [](void* from, void* to) { std::memcpy(to, from, sizeof(D*)); },
      [](void* storage) { delete heap_pointer<D>(storage); },
  };

  void take(EventAction& other) noexcept {
    ops_ = other.ops_;
    if (ops_ != nullptr) ops_->relocate(other.storage_, storage_);
    other.ops_ = nullptr;
  }

  alignas(std::max_align_t) unsigned char storage_[inline_bytes];
  const Ops* ops_ = nullptr;
};

}  // namespace hast::sim
