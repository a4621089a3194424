// run_off_thread (see off_thread.h): a detached thread, an eventfd and a watcher fiber.
//
// Method: the Job is shared by the thread, the watcher and the caller, so whichever ends
// last frees it (and closes the eventfd). The thread publishes `done` (release) before it
// writes the eventfd; the watcher reads the eventfd through the ring until it sees `done`
// (acquire), then wakes the caller, whose wait is not interruptible.
#include "real/fuse/off_thread.h"

#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <system_error>
#include <thread>

#include <fmt/format.h>

#include "core/fiber/wait_queue.h"

namespace hast::real::detail {
namespace {

struct Job {
  Job(fiber::Scheduler& scheduler, int fd, std::function<void()> work_body)
      : work(std::move(work_body)), event_fd(fd), finished(scheduler) {}
  ~Job() { ::close(event_fd); }
  Job(const Job&) = delete;
  Job& operator=(const Job&) = delete;

  std::function<void()> work;
  int event_fd;
  std::atomic<bool> done{false};  // written by the thread
  bool seen = false;              // the watcher saw `done`
  fiber::WaitQueue finished;      // the caller waits here for `seen`
};

void thread_body(const std::shared_ptr<Job>& job, const std::string& name) {
  // Names show in ps/top; the kernel keeps 15 characters.
  pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
  job->work();
  job->done.store(true, std::memory_order_release);
  std::uint64_t one = 1;
  // A failed write cannot happen on an eventfd below its maximum; the watcher would then
  // wait for ever, which the assertion in the watcher's loop cannot see, so check here.
  ssize_t written = ::write(job->event_fd, &one, sizeof one);
  HAST_ASSERT_MSG(written == sizeof one, "eventfd write: {}", std::strerror(errno));
}

void watch(fiber::Scheduler& scheduler, Ring& ring, const std::shared_ptr<Job>& job) {
  using namespace std::chrono_literals;
  while (!job->done.load(std::memory_order_acquire)) {
    std::uint64_t value = 0;
    int rc = ring.run([&](io_uring_sqe* sqe) {
      io_uring_prep_read(sqe, job->event_fd, &value, sizeof value, 0);
    });
    if (rc == -ECANCELED) return;  // the scheduler shuts down
    // Not expected from an eventfd; rather than spin, look again a little later.
    if (rc < 0 && rc != -EINTR && !scheduler.sleep_for(1ms)) return;
  }
  job->seen = true;
  job->finished.wake_all();
}

}  // namespace

Result<void> run_job_off_thread(fiber::Scheduler& scheduler, Ring& ring, std::string name,
                                std::function<void()> job_body) {
  HAST_ASSERT(scheduler.in_fiber());
  int fd = ::eventfd(0, EFD_CLOEXEC);
  if (fd < 0) return fail(errno_error(-errno, "eventfd for " + name));
  auto job = std::make_shared<Job>(scheduler, fd, std::move(job_body));
  auto watcher =
      scheduler.spawn(name + "-watch", [&scheduler, &ring, job] { watch(scheduler, ring, job); });
  if (!watcher) return fail(watcher.error());
  bool started = true;
  try {
    std::thread([job, name] { thread_body(job, name); }).detach();
  } catch (const std::system_error&) {
    started = false;
  }
  if (!started) {
    // The watcher waits on an eventfd nobody writes: end it.
    scheduler.cancel(*watcher);
    return fail(Errc::io, fmt::format("cannot start a thread for {}", name));
  }
  while (!job->seen) {
    if (job->finished.wait(std::nullopt, /*interruptible=*/false) == fiber::WakeReason::cancelled) {
      return fail(Errc::cancelled, fmt::format("{}: the scheduler shut down", name));
    }
  }
  return ok();
}

}  // namespace hast::real::detail
