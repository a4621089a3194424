// ThreadHost: hastd's ResourceHost (core/replication/resource_host.h). Each resource runs
// on its own thread with its own fiber scheduler, io_uring, stack pool, network, provider
// and frontends (DESIGN.md §7), so a slow disk or a busy resource stalls no other one and
// never the main thread (control socket, listeners, admission, signals, hooks).
//
// Model: a ResourceThread is an executor. Its objects are made on the main thread by
// create(); its thread runs the scheduler on its Ring until stop(). The two threads talk
// through Mailboxes (real/mailbox.h): run() posts the work to the resource thread, which
// spawns a fiber for it; when that fiber ends (returns or is unwound) the resource thread
// posts the completion back, and the main thread's mailbox wakes the waiting fiber. The
// main thread's scheduler keeps running meanwhile. A connection moves between threads
// with adopt_connection (real/net.h): its descriptor changes rings, nothing is buffered.
//
// Lifecycle: the threads start at launch(), which hastd calls once it has daemonised
// (fork keeps only the calling thread); an executor created after launch() (a resource
// added by SIGHUP) starts at once. stop() wakes the thread's keeper fiber, which stops
// the scheduler; the thread then drains its ring, unwinds what is left (each unwound
// call still completes, as Errc::cancelled) and ends; stop() joins it. Each thread is
// named "hastd:<resource>" (cut to the kernel's 15 characters), as ps -L and
// /proc/<pid>/task/*/comm show.
//
// Threads: ThreadHost and the executors' methods are called on the main thread (the one
// running `scheduler`); io(), frontends() and disks() are used on the resource's thread.
// The Log and the EventSink (HookRunner) are shared and thread-safe. The main scheduler
// must not shut down while a run() waits (HastNode::stop stops every executor first):
// the work may still refer to the waiting fiber's locals.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/io/log.h"
#include "core/io/node_io.h"
#include "core/replication/resource_host.h"
#include "real/clock.h"
#include "real/mailbox.h"
#include "real/net.h"
#include "real/ring.h"

namespace hast::real {

// A NodeIo's disk for nodes whose resources open their own providers: every call fails.
class NoDisk final : public Disk {
 public:
  Result<void> read(std::uint64_t, std::span<std::byte>) override { return none(); }
  Result<void> write(std::uint64_t, std::span<const std::byte>, Fua) override { return none(); }
  Result<void> flush() override { return none(); }
  Result<void> discard(std::uint64_t, std::uint64_t) override { return none(); }
  std::uint64_t size() const override { return 0; }
  DiskProperties properties() const override { return {}; }

 private:
  static Result<void> none() { return fail(Errc::unsupported, "no node disk in hastd"); }
};

// One thread's I/O: a clock, a random source, guarded fiber stacks of `stack_bytes`, a
// scheduler polled by its own Ring, the network on that ring, and the NodeIo over them
// (with a NoDisk). hastd's main thread (real/daemon.cc) and each ResourceThread own one.
// Members are built in the order declared; each refers only to those above it.
struct ThreadIo {
  // `poll_max`: the ring's spin window before it blocks (real/ring.h); zero: none.
  ThreadIo(Log& log, std::size_t stack_bytes, Duration poll_max = Duration::zero());
  ThreadIo(const ThreadIo&) = delete;
  ThreadIo& operator=(const ThreadIo&) = delete;

  RealClock clock;
  RealRandom random;
  GuardedStacks stacks;
  fiber::Scheduler scheduler;
  Ring ring;
  RealNetwork network;
  NoDisk no_disk;
  NodeIo io;
};

class ResourceThread;

class ThreadHost final : public replication::ResourceHost {
 public:
  // `scheduler` and `ring`: the main thread's (the ring's on_notify callback is taken).
  // `stack_bytes`: each fiber stack of the resource threads. `runtime_directory`: where
  // frontends put their sockets and mounts (real/resources.h).
  ThreadHost(fiber::Scheduler& scheduler, Ring& ring, Log& log, std::size_t stack_bytes,
             std::string runtime_directory);
  ~ThreadHost() override;
  ThreadHost(const ThreadHost&) = delete;
  ThreadHost& operator=(const ThreadHost&) = delete;

  // A ResourceThread for `resource`, running at once if launch() was called. Errors: the
  // thread cannot be created (Errc::no_space, naming the resource).
  Result<std::unique_ptr<replication::ResourceExecutor>> create(
      const config::ResourceConfig& resource) override;

  // Starts the threads of the executors created so far. Errors: as create().
  Result<void> launch();

  // Applies the settings a resource's thread takes without a restart (busypoll) to the
  // threads of `resources` (a reloaded configuration). Main thread.
  void tune(const std::vector<config::ResourceConfig>& resources);

 private:
  friend class ResourceThread;

  fiber::Scheduler& scheduler_;
  Mailbox mailbox_;  // the main thread's: completions of run()
  Log& log_;
  std::size_t stack_bytes_;
  std::string runtime_directory_;
  bool launched_ = false;
  std::vector<ResourceThread*> waiting_;  // created before launch(), not yet started
  std::map<std::string, ResourceThread*> threads_;  // every live one, by resource name
};

// The name a resource thread is given: "hastd:" + the resource name, cut to 15 bytes.
std::string resource_thread_name(const std::string& resource);

}  // namespace hast::real
