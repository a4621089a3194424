// The ResourceHost seam (core/replication/resource_host.h) in the simulator: HastNode
// reaches its resources only through their executors (role changes, status, the admitted
// connections, reload, stop), and an executor that cannot be made fails the reload with
// nothing changed.
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <catch2/catch.hpp>

#include "core/config/config.h"
#include "core/fiber/event.h"
#include "core/replication/local_component.h"
#include "core/replication/node.h"
#include "sim/node.h"
#include "sim/sim_disk.h"
#include "sim/world.h"
#include "tests/support/sim_fixtures.h"

using namespace std::chrono_literals;
using hast::Errc;
using hast::NodeIo;
using hast::meta::Role;
using hast::replication::HastNode;
using hast::replication::ResourceExecutor;
using hast::sim::NodeId;

namespace {

constexpr NodeId kA = 0;
constexpr NodeId kB = 1;
// The pair's hast.conf, with a second resource `extra` when `with_extra`.
std::string config_text(bool with_extra) {
  std::string text(hast::test::kPairConfig);
  if (with_extra) {
    text +=
        "resource extra {\n"
        "  local /dev/extra\n"
        "  on hasta {\n    remote tcp://10.0.0.2\n  }\n"
        "  on hastb {\n    remote tcp://10.0.0.1\n  }\n"
        "}\n";
  }
  return text;
}

// Every resource on the node's one disk.
class OneDisk final : public hast::replication::DiskProvider {
 public:
  explicit OneDisk(hast::Disk& disk) : disk_(disk) {}
  hast::Result<hast::Disk*> open(const hast::config::ResourceConfig&) override { return &disk_; }
  void close(const hast::config::ResourceConfig&) override {}

 private:
  hast::Disk& disk_;
};

// What a CountingHost's executors saw, per node.
struct Counts {
  int created = 0;
  int runs = 0;
  int adopts = 0;
  int stops = 0;
  bool refuse_runs = false;    // run() fails without running the work
  bool refuse_create = false;  // create() fails
};

// InlineHost's executors, counted; optionally refusing.
class CountingExecutor final : public ResourceExecutor {
 public:
  CountingExecutor(std::unique_ptr<ResourceExecutor> inner, Counts& counts)
      : inner_(std::move(inner)), counts_(counts) {}
  NodeIo& io() override { return inner_->io(); }
  hast::replication::FrontendFactory& frontends() override { return inner_->frontends(); }
  hast::replication::DiskProvider& disks() override { return inner_->disks(); }
  hast::Result<void> run(const std::function<void()>& work) override {
    counts_.runs++;
    if (counts_.refuse_runs) return hast::fail(Errc::cancelled, "refused by the test");
    return inner_->run(work);
  }
  hast::Result<std::shared_ptr<hast::Connection>> adopt(
      std::shared_ptr<hast::Connection> connection) override {
    counts_.adopts++;
    return inner_->adopt(std::move(connection));
  }
  void stop() override {
    counts_.stops++;
    inner_->stop();
  }

 private:
  std::unique_ptr<ResourceExecutor> inner_;
  Counts& counts_;
};

class CountingHost final : public hast::replication::ResourceHost {
 public:
  CountingHost(hast::replication::InlineHost& inner, Counts& counts)
      : inner_(inner), counts_(counts) {}
  hast::Result<std::unique_ptr<ResourceExecutor>> create(
      const hast::config::ResourceConfig& resource) override {
    if (counts_.refuse_create) return hast::fail(Errc::no_space, "no thread for " + resource.name);
    auto executor = inner_.create(resource);
    HAST_ASSERT(executor.has_value());
    counts_.created++;
    return std::unique_ptr<ResourceExecutor>(
        std::make_unique<CountingExecutor>(std::move(*executor), counts_));
  }

 private:
  hast::replication::InlineHost& inner_;
  Counts& counts_;
};

// Two nodes, each running a HastNode on a CountingHost; the test drives them.
class HostWorld {
 public:
  explicit HostWorld(std::uint64_t seed) : world_(seed, {"resource_host_test"}) {
    hast::test::add_pair_nodes(world_, [this](NodeId id, NodeIo& io) { program(id, io); });
  }
  ~HostWorld() { hast::test::kill_pair_nodes(world_); }

  hast::sim::World& world() { return world_; }
  Counts& counts(NodeId id) { return counts_[id]; }
  HastNode* node(NodeId id) { return hast_[id]; }

  void start(NodeId id) {
    world_.node(id).start();
    REQUIRE(world_.run_until([&] { return hast_[id] != nullptr; }, world_.now() + 10s));
  }

  // Runs `body` in a fiber of node `id` and the world until it returns.
  void on(NodeId id, const std::function<void(HastNode&)>& body) {
    bool done = false;
    HastNode& hast = *hast_[id];
    REQUIRE(world_.node(id).scheduler().spawn("test", [&] {
      body(hast);
      done = true;
    }));
    REQUIRE(world_.run_until([&] { return done; }, world_.now() + 600s));
  }

  hast::Result<Role> set_role(NodeId id, Role role) {
    std::optional<hast::Result<Role>> result;
    on(id, [&](HastNode& hast) { result.emplace(hast.set_role("shared", role)); });
    return *result;
  }

  bool complete(NodeId id) {
    auto status = hast_[id]->status("shared");
    return status && status->status == "complete" && status->dirty_bytes == 0;
  }

  // Ends node `id`'s program the way hastd stops (HastNode::stop).
  void stop(NodeId id) {
    on(id, [&](HastNode&) { stopping_[id]->set(); });
    REQUIRE(world_.run_until([&] { return hast_[id] == nullptr; }, world_.now() + 60s));
  }

  static hast::config::NodeConfig resolve(NodeId id, bool with_extra) {
    auto parsed = hast::config::parse(config_text(with_extra));
    HAST_ASSERT(parsed.has_value());
    hast::config::NodeIdentity identity;
    identity.hostname = std::string(hast::test::kPairNames[id]);
    auto resolved = hast::config::resolve(*parsed, identity);
    HAST_ASSERT(resolved.has_value());
    return std::move(*resolved);
  }

 private:
  void program(NodeId id, NodeIo& io) {
    hast::replication::CreateOptions options{256 * 1024, 8, 0};
    HAST_ASSERT(hast::replication::create_local(io.disk, "shared", options).has_value());
    hast::test::NoFrontends frontends;
    hast::test::NoEvents events;
    std::unique_ptr<HastNode> hast;
    OneDisk disks(io.disk);
    hast::replication::InlineHost inline_host(io, frontends, disks);
    CountingHost counting(inline_host, counts_[id]);
    hast = std::make_unique<HastNode>(io, resolve(id, false), events, counting,
                                      hast::replication::Timing{});
    HAST_ASSERT(hast->start().has_value());
    hast::fiber::Event stopping(io.scheduler);
    stopping_[id] = &stopping;
    hast_[id] = hast.get();
    ignore_error(stopping.wait(), "cancelled only when the node dies");
    hast->stop();
    hast_[id] = nullptr;
  }

  hast::sim::World world_;
  Counts counts_[2];
  HastNode* hast_[2] = {nullptr, nullptr};
  hast::fiber::Event* stopping_[2] = {nullptr, nullptr};
};

// B secondary, A primary, until both are complete; returns the world's trace hash.
std::string run_pair(HostWorld& cluster) {
  cluster.start(kA);
  cluster.start(kB);
  REQUIRE(cluster.set_role(kB, Role::secondary));
  REQUIRE(cluster.set_role(kA, Role::primary));
  REQUIRE(cluster.world().run_until([&] { return cluster.complete(kA) && cluster.complete(kB); },
                                    cluster.world().now() + 30s));
  cluster.stop(kA);
  cluster.stop(kB);
  return cluster.world().hash().hex();
}

}  // namespace

TEST_CASE("ResourceHost: every resource operation goes through the executor",
          "[sim][resource_host]") {
  HostWorld cluster(41);
  run_pair(cluster);
  for (NodeId id : {kA, kB}) {
    INFO("node " << hast::test::kPairNames[id]);
    const Counts& counts = cluster.counts(id);
    CHECK(counts.created == 1);
    // Two role changes each (one on each node, then init at stop) and the status polls.
    CHECK(counts.runs >= 2);
    CHECK(counts.stops >= 1);
  }
  // The secondary took the primary's two connections on the resource's executor.
  CHECK(cluster.counts(kB).adopts == 2);
  CHECK(cluster.counts(kA).adopts == 0);
}

TEST_CASE("ResourceHost: a resource whose executor runs nothing is never touched directly",
          "[sim][resource_host]") {
  HostWorld cluster(42);
  cluster.start(kA);
  cluster.counts(kA).refuse_runs = true;
  auto changed = cluster.set_role(kA, Role::secondary);
  REQUIRE(!changed);
  CHECK(changed.error().code() == Errc::cancelled);
  auto status = cluster.node(kA)->status("shared");
  REQUIRE(!status);
  CHECK(status.error().code() == Errc::cancelled);
  cluster.counts(kA).refuse_runs = false;
  auto status_now = cluster.node(kA)->status("shared");
  REQUIRE(status_now);
  CHECK(status_now->role == Role::init);
}

TEST_CASE("ResourceHost: no executor for an added resource, no reload", "[sim][resource_host]") {
  HostWorld cluster(43);
  cluster.start(kA);
  REQUIRE(cluster.set_role(kA, Role::secondary));
  cluster.counts(kA).refuse_create = true;
  std::optional<hast::Result<hast::replication::ReloadReport>> reloaded;
  auto reload = [&](HastNode& hast) {
    reloaded.emplace(hast.reload(HostWorld::resolve(kA, true)));
  };
  cluster.on(kA, reload);
  REQUIRE(!*reloaded);
  CHECK(reloaded->error().code() == Errc::no_space);
  CHECK(cluster.node(kA)->resource_names() == std::vector<std::string>{"shared"});
  CHECK(cluster.node(kA)->status("shared")->role == Role::secondary);
  // With executors to be had, the same reload adds the resource in init.
  cluster.counts(kA).refuse_create = false;
  cluster.on(kA, reload);
  REQUIRE(*reloaded);
  CHECK((*reloaded)->added == std::vector<std::string>{"extra"});
  CHECK(cluster.node(kA)->status("extra")->role == Role::init);
  CHECK(cluster.counts(kA).created == 2);
}
