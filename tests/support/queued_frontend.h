// A block frontend fed by the test: requests the test offers come out of next_request()
// in order, and complete() hands each answer to the test's callback. Its factory records
// the frontend the node opened (nullptr once closed), for tests that drive a HastNode's
// primary directly in the simulator.
#pragma once

#include <functional>
#include <memory>

#include "core/fiber/channel.h"
#include "core/io/frontend.h"
#include "core/replication/node.h"
#include "tests/support/node_pair.h"

namespace hast::test {

using OnComplete = std::function<void(const BlockRequest&, Result<void>)>;

class QueuedFrontend final : public BlockFrontend {
 public:
  QueuedFrontend(fiber::Scheduler& scheduler, std::size_t capacity, OnComplete on_complete)
      : queue_(scheduler, capacity), on_complete_(std::move(on_complete)) {}
  Result<BlockRequest> next_request() override {
    auto request = queue_.pop();
    if (!request) return fail(Errc::cancelled, "frontend closed");
    return request;
  }
  void complete(const BlockRequest& request, Result<void> result) override {
    on_complete_(request, std::move(result));
  }
  // False when the queue is full or closed.
  bool offer(const BlockRequest& request) { return queue_.try_push(request); }
  void close() { queue_.close(); }

 private:
  fiber::Channel<BlockRequest> queue_;
  OnComplete on_complete_;
};

class QueuedFrontends final : public replication::FrontendFactory {
 public:
  // `open` is set to the frontend while it is open.
  QueuedFrontends(fiber::Scheduler& scheduler, std::size_t capacity, OnComplete on_complete,
                  QueuedFrontend*& open)
      : scheduler_(scheduler), capacity_(capacity), on_complete_(std::move(on_complete)),
        open_(open) {}
  Result<std::unique_ptr<BlockFrontend>> open(const config::ResourceConfig&,
                                              std::uint64_t) override {
    auto frontend = std::make_unique<QueuedFrontend>(scheduler_, capacity_, on_complete_);
    open_ = frontend.get();
    return std::unique_ptr<BlockFrontend>(std::move(frontend));
  }
  void close(BlockFrontend& frontend) override {
    static_cast<QueuedFrontend&>(frontend).close();
    if (open_ == &frontend) open_ = nullptr;
  }

 private:
  fiber::Scheduler& scheduler_;
  std::size_t capacity_;
  OnComplete on_complete_;
  QueuedFrontend*& open_;
};

// A NodePair node's parts whose frontend is a QueuedFrontend (`open` while it is open).
class QueuedFrontendParts final : public NodeParts {
 public:
  QueuedFrontendParts(NodeIo& io, std::size_t capacity, OnComplete on_complete,
                      QueuedFrontend*& open)
      : frontends_(io.scheduler, capacity, std::move(on_complete), open) {}
  replication::FrontendFactory& frontends() override { return frontends_; }

 private:
  QueuedFrontends frontends_;
};

}  // namespace hast::test
