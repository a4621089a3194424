// InlineHost: the executor that runs a resource's work in the caller's own fiber.
#include "core/replication/resource_host.h"

#include "core/assert.h"

namespace hast::replication {
namespace {

class InlineExecutor final : public ResourceExecutor {
 public:
  InlineExecutor(NodeIo& io, FrontendFactory& frontends, DiskProvider& disks)
      : io_(io), frontends_(frontends), disks_(disks) {}

  NodeIo& io() override { return io_; }
  FrontendFactory& frontends() override { return frontends_; }
  DiskProvider& disks() override { return disks_; }

  // In place: the caller's fiber is the work's fiber, so cancelling it cancels the work.
  Result<void> run(const std::function<void()>& work) override {
    HAST_ASSERT(work != nullptr);
    if (stopped_) return fail(Errc::cancelled, "resource executor stopped");
    work();
    return ok();
  }

  // The same network: the handle stays as it is.
  Result<std::shared_ptr<Connection>> adopt(std::shared_ptr<Connection> connection) override {
    HAST_ASSERT(connection != nullptr);
    return connection;
  }

  void stop() override { stopped_ = true; }

 private:
  NodeIo& io_;
  FrontendFactory& frontends_;
  DiskProvider& disks_;
  bool stopped_ = false;
};

}  // namespace

Result<std::unique_ptr<ResourceExecutor>> InlineHost::create(const config::ResourceConfig&) {
  std::unique_ptr<ResourceExecutor> executor =
      std::make_unique<InlineExecutor>(io_, frontends_, disks_);
  return executor;
}

}  // namespace hast::replication
