// A pair of hastd-like HastNodes on a World, driven by a simulator test: hasta (node 0) and
// hastb (node 1) from add_pair_nodes, each running one program that creates the resource
// `shared` if asked, builds the test's NodeParts (frontends, disks or a ResourceHost, hooks
// around the node's life), runs a HastNode on the pair's hast.conf until the test stops the
// node or kills it, and stops the HastNode.
//
// The fixture owns the node programs' shape; what varies is the test's: the hast.conf text
// (pair_config), timing, mutation and the parts. Steps run from the test body check with
// REQUIRE; steps inside a node's fibers assert with HAST_ASSERT (a Catch failure must not
// unwind across a fiber switch). Only set-up lives here: what a test checks stays in it.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <catch2/catch.hpp>

#include "core/assert.h"
#include "core/config/config.h"
#include "core/fiber/event.h"
#include "core/meta/metadata.h"
#include "core/replication/local_component.h"
#include "core/replication/node.h"
#include "sim/node.h"
#include "sim/world.h"
#include "tests/support/sim_fixtures.h"

namespace hast::test {

inline constexpr sim::NodeId kPairA = 0;  // hasta
inline constexpr sim::NodeId kPairB = 1;  // hastb

// The pair's hast.conf (kPairConfig) with a `replication` line when `replication` is not
// empty ("fullsync", "memsync", "async") and `extra` (more resources) appended.
inline std::string pair_config(std::string_view replication = {}, std::string_view extra = {}) {
  std::string text(kPairConfig);
  if (!replication.empty()) {
    std::size_t after_listen = text.find('\n') + 1;
    text.insert(after_listen, "replication " + std::string(replication) + "\n");
  }
  text += extra;
  return text;
}

// `config_text` parsed and resolved for node `id` (hasta or hastb); HAST_ASSERT on errors.
inline config::NodeConfig resolve_pair_config(sim::NodeId id, std::string_view config_text) {
  auto parsed = config::parse(config_text);
  HAST_ASSERT(parsed.has_value());
  config::NodeIdentity identity;
  identity.hostname = std::string(kPairNames[id]);
  auto resolved = config::resolve(*parsed, identity);
  HAST_ASSERT(resolved.has_value());
  return std::move(*resolved);
}

// A DiskProvider that gives every resource the one disk it was made with.
class OneDiskProvider final : public replication::DiskProvider {
 public:
  explicit OneDiskProvider(Disk& disk) : disk_(disk) {}
  Result<Disk*> open(const config::ResourceConfig&) override { return &disk_; }
  void close(const config::ResourceConfig&) override {}

 private:
  Disk& disk_;
};

// What a test gives one node's HastNode for one run of its program. Made by the test's
// factory once the resource is created, destroyed when the program ends (after
// HastNode::stop), so members may refer to each other and to the node's io.
class NodeParts {
 public:
  virtual ~NodeParts() = default;
  // The executors; nullptr (the default): the node's own scheduler (InlineHost) with
  // frontends() and disks().
  virtual replication::ResourceHost* host() { return nullptr; }
  // Used when host() is nullptr. Default: no frontends; every resource on io.disk.
  virtual replication::FrontendFactory& frontends() { return no_frontends_; }
  virtual replication::DiskProvider* disks() { return nullptr; }
  // Runs in the node's program after HastNode::start succeeded, before the fixture
  // publishes the node; `stop` ends the program as NodePair::stop does.
  virtual void started(replication::HastNode&, const std::function<void()>& /*stop*/) {}
  // Runs in the node's program when it stops or dies, before HastNode::stop.
  virtual void stopping() {}

 private:
  NoFrontends no_frontends_;
};

struct NodePairOptions {
  std::string replay_command;                     // names the test in the World's replay line
  std::string config = std::string(kPairConfig);  // the pair's hast.conf (pair_config)
  replication::Timing timing{};
  replication::Mutation mutation = replication::Mutation::none;
  bool keep_trace = false;  // the World keeps its trace lines, log lines among them
};

// Makes node `id`'s parts at each start of its program. `created`: the resource `shared`
// as `hastctl create` wrote it at this start (the node's first); nullptr at a later start,
// on the disk as it was left.
using MakeParts =
    std::function<std::unique_ptr<NodeParts>(sim::NodeId, NodeIo&, meta::Metadata* created)>;

// The default parts: no frontends, every resource on io.disk.
inline std::unique_ptr<NodeParts> default_parts(sim::NodeId, NodeIo&, meta::Metadata*) {
  return std::make_unique<NodeParts>();
}

class NodePair {
 public:
  NodePair(std::uint64_t seed, NodePairOptions options, MakeParts make_parts = default_parts)
      : world_(seed, sim::WorldOptions{.replay_command = options.replay_command,
                                       .keep_trace = options.keep_trace,
                                       .echo_logs = std::getenv("HAST_ECHO") != nullptr}),
        options_(std::move(options)),
        make_parts_(std::move(make_parts)) {
    add_pair_nodes(world_, [this](sim::NodeId id, NodeIo& io) { program(id, io); });
  }
  // The programs refer to this fixture: end them before its members go.
  ~NodePair() { kill_pair_nodes(world_); }
  NodePair(const NodePair&) = delete;
  NodePair& operator=(const NodePair&) = delete;

  sim::World& world() { return world_; }
  // Node `id`'s HastNode while its program runs it; nullptr before and after.
  replication::HastNode* node(sim::NodeId id) { return hast_[id]; }
  // Whether node `id`'s program has stopped its HastNode (after stop() or its parts' stop
  // callback).
  bool stopped(sim::NodeId id) const { return stopped_[id]; }

  // Starts node `id` and runs the world until its HastNode is up (NodeParts::started ran).
  void start(sim::NodeId id) {
    world_.node(id).start();
    REQUIRE(run_until([&] { return hast_[id] != nullptr; }, std::chrono::seconds(60)));
  }

  // Runs `body` in a fiber of node `id` and the world until it returns.
  void on(sim::NodeId id, const std::function<void(replication::HastNode&)>& body) {
    bool done = false;
    REQUIRE(hast_[id] != nullptr);
    replication::HastNode& hast = *hast_[id];
    REQUIRE(world_.node(id).scheduler().spawn("test", [&] {
      body(hast);
      done = true;
    }));
    REQUIRE(run_until([&] { return done; }, std::chrono::seconds(600)));
  }

  // Sets `shared` on node `id` to `role`, from a fiber of that node.
  Result<meta::Role> set_role(sim::NodeId id, meta::Role role) {
    std::optional<Result<meta::Role>> result;
    on(id, [&](replication::HastNode& hast) { result.emplace(hast.set_role("shared", role)); });
    return *result;
  }

  // hastb started and secondary, then hasta started and primary (the roles REQUIREd).
  void start_secondary_then_primary() {
    for (sim::NodeId id : {kPairB, kPairA}) start(id);
    REQUIRE(set_role(kPairB, meta::Role::secondary));
    REQUIRE(set_role(kPairA, meta::Role::primary));
  }

  // Runs the world until `condition` holds or `within` has passed; true when it held.
  bool run_until(const std::function<bool()>& condition, Duration within) {
    return world_.run_until(condition, world_.now() + within);
  }

  // Ends node `id`'s program the way hastd stops (HastNode::stop) and runs the world
  // until it has.
  void stop(sim::NodeId id) {
    on(id, [&](replication::HastNode&) { stopping_[id]->set(); });
    REQUIRE(run_until([&] { return hast_[id] == nullptr; }, std::chrono::seconds(60)));
  }

 private:
  void program(sim::NodeId id, NodeIo& io) {
    std::optional<meta::Metadata> created;
    if (create_[id]) {
      replication::CreateOptions options{256 * 1024, 8, 0};
      auto result = replication::create_local(io.disk, "shared", options);
      HAST_ASSERT(result.has_value());
      created = std::move(*result);
      create_[id] = false;
    }
    std::unique_ptr<NodeParts> parts = make_parts_(id, io, created ? &*created : nullptr);
    HAST_ASSERT(parts != nullptr);
    NoEvents events;
    replication::HastNode hast = make_node(id, io, *parts, events);
    HAST_ASSERT(hast.start().has_value());
    fiber::Event stopping(io.scheduler);
    stopping_[id] = &stopping;
    parts->started(hast, [&stopping] { stopping.set(); });
    hast_[id] = &hast;
    ignore_error(stopping.wait(), "cancelled only when the node dies");
    stopping_[id] = nullptr;
    parts->stopping();
    hast.stop();
    hast_[id] = nullptr;
    stopped_[id] = true;
  }

  // The HastNode on the parts' host, or on the node's scheduler with their frontends and
  // disks.
  replication::HastNode make_node(sim::NodeId id, NodeIo& io, NodeParts& parts,
                                  replication::EventSink& events) {
    config::NodeConfig config = resolve_pair_config(id, options_.config);
    if (parts.host() != nullptr) {
      return replication::HastNode(io, std::move(config), events, *parts.host(),
                                   options_.timing, options_.mutation);
    }
    return replication::HastNode(io, std::move(config), events, parts.frontends(),
                                 options_.timing, options_.mutation, parts.disks());
  }

  sim::World world_;
  NodePairOptions options_;
  MakeParts make_parts_;
  replication::HastNode* hast_[2] = {nullptr, nullptr};
  fiber::Event* stopping_[2] = {nullptr, nullptr};
  bool create_[2] = {true, true};  // `hastctl create` at the next start
  bool stopped_[2] = {false, false};
};

}  // namespace hast::test
