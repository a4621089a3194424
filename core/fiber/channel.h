// Channel<T>: a bounded FIFO queue between fibers of one scheduler.
//
// Model: push() suspends while the channel holds `capacity` items (back-pressure), pop()
// suspends while it is empty. close() ends the channel: pushes fail at once, pops drain
// what is left and then fail. Failures: Errc::disconnected (closed), Errc::timed_out,
// Errc::cancelled.
#pragma once

#include <cstddef>
#include <deque>
#include <utility>

#include "core/fiber/wait_queue.h"

namespace hast::fiber {

template <typename T>
class Channel {
 public:
  Channel(Scheduler& scheduler, std::size_t capacity)
      : capacity_(capacity), readers_(scheduler), writers_(scheduler) {
    HAST_ASSERT(capacity_ > 0);
  }

  Result<void> push(T value, Deadline deadline = std::nullopt) {
    while (true) {
      if (closed_) return fail(Errc::disconnected, "channel closed");
      if (items_.size() < capacity_) break;
      WakeReason reason = writers_.wait(deadline);
      if (reason != WakeReason::woken) return wake_result(reason, "channel push");
    }
    items_.push_back(std::move(value));
    HAST_ASSERT(items_.size() <= capacity_);
    readers_.wake_all();
    return ok();
  }

  // Pushes without waiting; false when the channel is full or closed.
  bool try_push(T value) {
    if (closed_ || items_.size() >= capacity_) return false;
    items_.push_back(std::move(value));
    readers_.wake_all();
    return true;
  }

  Result<T> pop(Deadline deadline = std::nullopt) {
    while (items_.empty()) {
      if (closed_) return fail(Errc::disconnected, "channel closed");
      WakeReason reason = readers_.wait(deadline);
      if (reason != WakeReason::woken) return fail(wake_result(reason, "channel pop").error());
    }
    return take_front();
  }

  // Pops without waiting; an error (Errc::not_found or Errc::disconnected) when empty.
  Result<T> try_pop() {
    if (!items_.empty()) return take_front();
    if (closed_) return fail(Errc::disconnected, "channel closed");
    return fail(Errc::not_found, "channel empty");
  }

  void close() {
    closed_ = true;
    readers_.wake_all();
    writers_.wake_all();
  }

  bool closed() const { return closed_; }
  std::size_t size() const { return items_.size(); }
  std::size_t capacity() const { return capacity_; }

 private:
  Result<T> take_front() {
    HAST_ASSERT(!items_.empty());
    T value = std::move(items_.front());
    items_.pop_front();
    writers_.wake_all();
    return value;
  }

  std::size_t capacity_;
  std::deque<T> items_;
  WaitQueue readers_;
  WaitQueue writers_;
  bool closed_ = false;
};

}  // namespace hast::fiber
