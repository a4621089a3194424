// ResourceHost: where each resource of a HastNode runs (DESIGN.md §7: one scheduler per
// resource; FreeBSD's hastd forks a worker per resource, hastd runs a thread).
//
// Model: the HastNode keeps the listeners, admission, role orchestration and reload on its
// own scheduler, "the node's". Each Resource (its role logic, local component, peer
// connections and frontend) lives on an executor the host creates for it, with its own
// NodeIo (scheduler, network, clock, random, log, stacks), frontends and providers. The
// node reaches a resource only through ResourceExecutor::run, which runs a piece of work
// in a fiber of the executor's scheduler while the calling fiber of the node suspends; a
// connection accepted on the node's network moves to the executor's with adopt().
//
// InlineHost (the simulator, core tests) puts every resource on the node's own scheduler:
// run() calls the work in place and adopt() hands the connection back unchanged, so no
// fiber, timer or random draw is added and a simulated node behaves (and hashes) exactly
// as it would without the seam. hastd's ThreadHost (real/resource_thread.h) gives each
// resource a thread with its own scheduler and io_uring.
#pragma once

#include <functional>
#include <memory>

#include "core/config/config.h"
#include "core/io/network.h"
#include "core/io/node_io.h"
#include "core/result.h"

namespace hast::replication {

class FrontendFactory;
class DiskProvider;

// One resource's place to run. Created by a ResourceHost on the node's scheduler thread;
// every method is called from there (io() is handed to the resource, which uses it on the
// executor's own scheduler).
class ResourceExecutor {
 public:
  virtual ~ResourceExecutor() = default;

  // What the resource's code runs on. Valid for the executor's whole life.
  virtual NodeIo& io() = 0;
  virtual FrontendFactory& frontends() = 0;
  virtual DiskProvider& disks() = 0;

  // Runs `work` to its end in a fiber of io().scheduler; the calling fiber suspends (its
  // scheduler keeps running others) until `work` has returned, so `work` may refer to the
  // caller's locals. Cancelling the calling fiber cancels the fiber running `work` (its
  // waits fail with Errc::cancelled) and still waits for it to return. Calls run in the
  // order they were made, concurrently with each other as fibers do. Errors:
  // Errc::cancelled when `work` did not run to its end (the executor was stopped, or is
  // being torn down); the outcome of `work` travels in what it captures. InlineHost's
  // executors also accept calls from outside any fiber.
  virtual Result<void> run(const std::function<void()>& work) = 0;

  // Moves `connection`, accepted on the node's network and used by no fiber at the
  // moment, to this executor's network; the handle passed in is unusable afterwards
  // (Errc::disconnected on every call). Bytes already received were consumed by their
  // reader; nothing is buffered in a handle. Errors: the connection was closed, or is not
  // one this executor's network can take over (Errc::invalid_argument).
  virtual Result<std::shared_ptr<Connection>> adopt(std::shared_ptr<Connection> connection) = 0;

  // Ends the executor: no work runs any more (run() fails with Errc::cancelled) and its
  // scheduler is shut down. Called by the node once the resource is in role init and no
  // call is in progress, before the Resource is destroyed. Idempotent.
  virtual void stop() = 0;
};

class ResourceHost {
 public:
  virtual ~ResourceHost() = default;
  // A new executor for `resource`. Errors: the executor cannot be set up (no thread, no
  // ring); the caller then does not add the resource.
  virtual Result<std::unique_ptr<ResourceExecutor>> create(
      const config::ResourceConfig& resource) = 0;
};

// Every resource on the node's own scheduler, NodeIo, frontends and providers.
class InlineHost final : public ResourceHost {
 public:
  InlineHost(NodeIo& io, FrontendFactory& frontends, DiskProvider& disks)
      : io_(io), frontends_(frontends), disks_(disks) {}
  Result<std::unique_ptr<ResourceExecutor>> create(const config::ResourceConfig& resource) override;

 private:
  NodeIo& io_;
  FrontendFactory& frontends_;
  DiskProvider& disks_;
};

}  // namespace hast::replication
