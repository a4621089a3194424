// The ResourceHost seam (core/replication/resource_host.h) in the simulator: HastNode
// reaches its resources only through their executors (role changes, status, the admitted
// connections, reload, stop), and an executor that cannot be made fails the reload with
// nothing changed.
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "core/assert.h"
#include "core/replication/node.h"
#include "core/replication/resource_host.h"
#include "sim/world.h"
#include "tests/support/node_pair.h"

using namespace std::chrono_literals;
using hast::Errc;
using hast::NodeIo;
using hast::meta::Role;
using hast::replication::HastNode;
using hast::replication::ResourceExecutor;
using hast::sim::NodeId;

namespace {

constexpr NodeId kA = hast::test::kPairA;
constexpr NodeId kB = hast::test::kPairB;
// The second resource a reload adds.
constexpr std::string_view kExtra =
    "resource extra {\n"
    "  local /dev/extra\n"
    "  on hasta {\n    remote tcp://10.0.0.2\n  }\n"
    "  on hastb {\n    remote tcp://10.0.0.1\n  }\n"
    "}\n";

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

// A node's executors: InlineHost's on the node's one disk, counted.
class CountingParts final : public hast::test::NodeParts {
 public:
  CountingParts(NodeIo& io, Counts& counts)
      : disks_(io.disk), inline_host_(io, no_frontends_, disks_), counting_(inline_host_, counts) {}
  hast::replication::ResourceHost* host() override { return &counting_; }

 private:
  hast::test::NoFrontends no_frontends_;
  hast::test::OneDiskProvider disks_;
  hast::replication::InlineHost inline_host_;
  CountingHost counting_;
};

// Two nodes, each running a HastNode on a CountingHost; the test drives them.
class HostWorld {
 public:
  explicit HostWorld(std::uint64_t seed)
      : pair_(seed, {.replay_command = "resource_host_test"},
              [this](NodeId id, NodeIo& io, hast::meta::Metadata*) {
                return std::make_unique<CountingParts>(io, counts_[id]);
              }) {}

  hast::sim::World& world() { return pair_.world(); }
  Counts& counts(NodeId id) { return counts_[id]; }
  HastNode* node(NodeId id) { return pair_.node(id); }
  void start(NodeId id) { pair_.start(id); }
  void on(NodeId id, const std::function<void(HastNode&)>& body) { pair_.on(id, body); }
  hast::Result<Role> set_role(NodeId id, Role role) { return pair_.set_role(id, role); }
  void stop(NodeId id) { pair_.stop(id); }

  bool complete(NodeId id) {
    auto status = pair_.node(id)->status("shared");
    return status && status->status == "complete" && status->dirty_bytes == 0;
  }

  static hast::config::NodeConfig resolve(NodeId id, bool with_extra) {
    std::string_view extra = with_extra ? kExtra : "";
    return hast::test::resolve_pair_config(id, hast::test::pair_config({}, extra));
  }

 private:
  Counts counts_[2];  // before pair_: the node programs refer to it until pair_ has killed them
  hast::test::NodePair pair_;
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
