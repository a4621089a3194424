// run_off_thread: a blocking call made on a helper thread while the calling fiber waits,
// so the scheduler's thread keeps serving (DESIGN.md §3: no blocking call there).
//
// Why: attaching or detaching a loop device, unmounting, even closing a file on our own
// FUSE mount make the kernel send FUSE requests and wait for the replies. Those replies
// come from fibers on the scheduler's thread, so the call must run elsewhere.
//
// Model: the work runs on a new detached std::thread. When it returns, the thread writes
// an eventfd that a watcher fiber reads through the Ring, and the watcher wakes the
// caller. (Not Ring::notify(): its one on_notify callback belongs to the whole ring,
// shared by every resource; an eventfd per call needs no registry.)
//
// Cancellation: the caller's wait ignores cancellation of the calling fiber. The work
// holds kernel objects (a half-attached loop device) that must not be abandoned halfway,
// so a role change that is itself being cancelled still waits for it. Only the
// scheduler's shutdown (a dying node) ends the wait early: run_off_thread then returns
// Errc::cancelled and the thread finishes alone, its result dropped.
//
// Lifetime: the work owns everything it touches (captured by value or shared); it must
// not refer to the caller's locals, which are gone if the wait ended early. It must not
// log (Log belongs to the scheduler's thread): return what happened instead.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "core/fiber/scheduler.h"
#include "core/result.h"
#include "real/ring.h"

namespace hast::real {

namespace detail {
// Runs `job` on a detached thread named `name` and suspends the calling fiber until it
// returned. Errors: the thread or eventfd cannot be created (Errc::io, the job did not
// run), or the scheduler shut down first (Errc::cancelled, the job may still run).
Result<void> run_job_off_thread(fiber::Scheduler& scheduler, Ring& ring, std::string name,
                                std::function<void()> job);
}  // namespace detail

// Runs `work` on a helper thread and returns its result; called from a fiber. See above.
template <typename T>
Result<T> run_off_thread(fiber::Scheduler& scheduler, Ring& ring, std::string name,
                         std::function<Result<T>()> work) {
  auto slot = std::make_shared<std::optional<Result<T>>>();
  auto ran = detail::run_job_off_thread(scheduler, ring, std::move(name),
                                        [slot, work = std::move(work)] { slot->emplace(work()); });
  if (!ran) return fail(ran.error());
  HAST_ASSERT(slot->has_value());
  return std::move(**slot);
}

}  // namespace hast::real
