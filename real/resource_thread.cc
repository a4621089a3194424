// ResourceThread: one resource's thread, scheduler and ring (the model is in
// real/resource_thread.h).
#include "real/resource_thread.h"

#include <pthread.h>

#include <algorithm>
#include <optional>
#include <system_error>
#include <thread>

#include <fmt/format.h>

#include "core/assert.h"
#include "real/clock.h"
#include "real/net.h"
#include "real/resources.h"

namespace hast::real {

ThreadIo::ThreadIo(Log& log, std::size_t stack_bytes, Duration poll_max)
    : stacks(stack_bytes),
      scheduler(clock, stacks, nullptr, {}),
      ring(scheduler, RingPolling{.max = poll_max}),
      network(ring),
      io{no_disk, network, clock, random, log, stacks, scheduler} {}

// One run() in progress. `waker` and `done` belong to the main thread, `fiber` and
// `completed` to the resource thread; the mailboxes order the hand-overs.
struct RunCall {
  const std::function<void()>* work = nullptr;
  fiber::Waker waker;
  bool done = false;
  std::optional<fiber::FiberId> fiber;
  bool completed = false;
};

class ResourceThread final : public replication::ResourceExecutor {
 public:
  ResourceThread(ThreadHost& host, const config::ResourceConfig& resource)
      : host_(host),
        name_(resource.name),
        own_(host.log_, host.stack_bytes_, std::chrono::microseconds(resource.busypoll_us)),
        disks_(own_.ring),
        frontends_(own_.scheduler, own_.network, host.log_, disks_, host.runtime_directory_),
        mailbox_(own_.ring) {
    host_.threads_[name_] = this;
  }

  ~ResourceThread() override {
    stop();
    std::erase(host_.waiting_, this);
    host_.threads_.erase(name_);
  }

  // busypoll of a reloaded configuration; the ring takes it at its next wait.
  void tune(const config::ResourceConfig& resource) {
    own_.ring.set_poll_max(std::chrono::microseconds(resource.busypoll_us));
  }

  NodeIo& io() override { return own_.io; }
  replication::FrontendFactory& frontends() override { return frontends_; }
  replication::DiskProvider& disks() override { return disks_; }
  Result<void> run(const std::function<void()>& work) override;
  Result<std::shared_ptr<Connection>> adopt(std::shared_ptr<Connection> connection) override;
  void stop() override;

  // Starts the thread. Errors: the system has no thread to give.
  Result<void> launch();

 private:
  void body();
  void keep();
  void begin(const std::shared_ptr<RunCall>& call);
  void finish(const std::shared_ptr<RunCall>& call);

  ThreadHost& host_;
  std::string name_;
  ThreadIo own_;  // this thread's clock, scheduler, ring, network and NodeIo
  PosixDiskProvider disks_;
  RealFrontends frontends_;
  Mailbox mailbox_;  // this thread's: work, cancellations, the stop request
  std::thread thread_;
  bool stopped_ = false;       // main thread
  bool stopping_ = false;      // resource thread
  fiber::Waker keeper_;        // resource thread
};

std::string resource_thread_name(const std::string& resource) {
  std::string name = "hastd:" + resource;
  if (name.size() > 15) name.resize(15);
  return name;
}

Result<void> ResourceThread::launch() {
  HAST_ASSERT(!thread_.joinable());
  try {
    thread_ = std::thread([this] { body(); });
  } catch (const std::system_error& error) {
    return fail(Errc::no_space,
                fmt::format("resource {}: cannot start its thread: {}", name_, error.what()));
  }
  return ok();
}

// The thread: the scheduler runs until the keeper stops it; then every operation in
// flight completes and what is left of the fibers is unwound.
void ResourceThread::body() {
  std::string name = resource_thread_name(name_);
  ::pthread_setname_np(::pthread_self(), name.c_str());
  HAST_ASSERT(own_.scheduler.spawn("resource-keeper", [this] { keep(); }).has_value());
  own_.scheduler.run(own_.ring);
  own_.ring.drain();
  own_.scheduler.shutdown();
}

// Keeps the scheduler running while no other fiber exists, until stop() asks it to end.
void ResourceThread::keep() {
  while (!stopping_) {
    keeper_ = own_.scheduler.prepare_wait();
    own_.scheduler.wait(std::nullopt, /*interruptible=*/false);
  }
  own_.scheduler.stop();
}

void ResourceThread::stop() {
  if (stopped_) return;
  stopped_ = true;
  if (!thread_.joinable()) {
    own_.scheduler.shutdown();
    return;
  }
  mailbox_.post([this] {
    stopping_ = true;
    if (keeper_.valid()) keeper_.wake();
  });
  thread_.join();
}

Result<void> ResourceThread::run(const std::function<void()>& work) {
  HAST_ASSERT(host_.scheduler_.in_fiber());
  if (stopped_ || !thread_.joinable()) {
    return fail(Errc::cancelled, fmt::format("resource {}: its thread is not running", name_));
  }
  fiber::Scheduler& caller = host_.scheduler_;
  auto call = std::make_shared<RunCall>();
  call->work = &work;
  call->waker = caller.prepare_wait();
  mailbox_.post([this, call] { begin(call); });
  caller.wait(std::nullopt);
  if (!call->done) {
    // The caller was cancelled: so is the work, which may still use the caller's locals.
    mailbox_.post([this, call] {
      if (call->fiber) own_.scheduler.cancel(*call->fiber);
    });
    while (!call->done && !caller.is_shut_down()) {
      call->waker = caller.prepare_wait();
      caller.wait(std::nullopt, /*interruptible=*/false);
    }
  }
  if (!call->completed) {
    return fail(Errc::cancelled, fmt::format("resource {}: the call did not complete", name_));
  }
  return ok();
}

// On the resource thread, outside fibers.
void ResourceThread::begin(const std::shared_ptr<RunCall>& call) {
  auto spawned = own_.scheduler.spawn("resource-call", [this, call] {
    // Completes the call also when the fiber is unwound (the thread is stopping).
    struct Completion {
      ResourceThread& thread;
      const std::shared_ptr<RunCall>& call;
      ~Completion() { thread.finish(call); }
    } completion{*this, call};
    (*call->work)();
    call->completed = true;
  });
  if (spawned) {
    call->fiber = *spawned;
  } else {
    finish(call);
  }
}

void ResourceThread::finish(const std::shared_ptr<RunCall>& call) {
  host_.mailbox_.post([call] {
    call->done = true;
    call->waker.wake();
  });
}

Result<std::shared_ptr<Connection>> ResourceThread::adopt(std::shared_ptr<Connection> connection) {
  HAST_ASSERT(connection != nullptr);
  auto adopted = adopt_connection(own_.ring, *connection);
  if (!adopted) return fail(adopted.error());
  return std::shared_ptr<Connection>(std::move(*adopted));
}

// ---- ThreadHost ----

ThreadHost::ThreadHost(fiber::Scheduler& scheduler, Ring& ring, Log& log,
                       std::size_t stack_bytes, std::string runtime_directory)
    : scheduler_(scheduler),
      mailbox_(ring),
      log_(log),
      stack_bytes_(stack_bytes),
      runtime_directory_(std::move(runtime_directory)) {}

ThreadHost::~ThreadHost() {
  HAST_ASSERT_MSG(waiting_.empty(), "resource executors outlive their host");
}

Result<std::unique_ptr<replication::ResourceExecutor>> ThreadHost::create(
    const config::ResourceConfig& resource) {
  auto thread = std::make_unique<ResourceThread>(*this, resource);
  if (launched_) {
    HAST_TRY(thread->launch());
  } else {
    waiting_.push_back(thread.get());
  }
  std::unique_ptr<replication::ResourceExecutor> executor = std::move(thread);
  return executor;
}

void ThreadHost::tune(const std::vector<config::ResourceConfig>& resources) {
  for (const config::ResourceConfig& resource : resources) {
    auto found = threads_.find(resource.name);
    if (found != threads_.end()) found->second->tune(resource);
  }
}

Result<void> ThreadHost::launch() {
  HAST_ASSERT(!launched_);
  launched_ = true;
  std::vector<ResourceThread*> waiting = std::move(waiting_);
  waiting_.clear();
  for (ResourceThread* thread : waiting)
    HAST_TRY(thread->launch());
  return ok();
}

}  // namespace hast::real
