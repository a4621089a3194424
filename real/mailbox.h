// Mailbox: tasks handed to one scheduler thread by other threads (hastd's main thread and
// its resource threads, real/resource_thread.h).
//
// Model: post() queues a task under a mutex and wakes the owner's Ring (Ring::notify);
// the Ring's poller then runs every queued task on the owner thread, outside fibers, in
// the order they were posted. A task may spawn, wake or cancel fibers of that thread's
// scheduler; it must not suspend. Tasks posted after the owner stopped polling are
// destroyed, unrun, with the Mailbox.
//
// Threads: post() from any thread; everything else on the owner's thread. The Mailbox
// takes its Ring's one on_notify callback for its whole life.
#pragma once

#include <functional>
#include <mutex>
#include <vector>

#include "real/ring.h"

namespace hast::real {

class Mailbox {
 public:
  explicit Mailbox(Ring& ring);
  ~Mailbox();
  Mailbox(const Mailbox&) = delete;
  Mailbox& operator=(const Mailbox&) = delete;

  // Queues `task` for the owner thread and wakes it. Any thread.
  void post(std::function<void()> task);

 private:
  void drain();

  Ring& ring_;
  std::mutex mutex_;
  std::vector<std::function<void()>> tasks_;  // guarded by mutex_
};

}  // namespace hast::real
