#include "real/mailbox.h"

#include <utility>

namespace hast::real {

Mailbox::Mailbox(Ring& ring) : ring_(ring) {
  ring_.set_on_notify([this] { drain(); });
}

Mailbox::~Mailbox() {
  ring_.set_on_notify(nullptr);
}

void Mailbox::post(std::function<void()> task) {
  {
    std::lock_guard lock(mutex_);
    tasks_.push_back(std::move(task));
  }
  // After the push: a drain that misses this task sees the notification later.
  ring_.notify();
}

void Mailbox::drain() {
  std::vector<std::function<void()>> tasks;
  {
    std::lock_guard lock(mutex_);
    tasks.swap(tasks_);
  }
  for (auto& task : tasks)
    task();
}

}  // namespace hast::real
