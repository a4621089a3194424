// Configuration reload (reference/hast-spec.md §1.5) in the simulator: hastd-like node
// programs run a HastNode over several SimDisks (one per `local` path), each node with its
// own hast.conf; the test edits a node's file and calls HastNode::reload from a fiber on
// that node, as hastd does on SIGHUP.
//
// Checks: classify_change's table; resources added (in init, then usable) and removed
// (role init, then gone, the others untouched); a changed local path restarts the
// resource in its role with two `role` events, and a restart whose role cannot start ends
// in init; a replication change on a primary applies to new requests only, without a
// restart, and survives a reconnect (HAST lost it there); a remote change on a primary
// drops the link and reconnects to the new address, `remote none` stays disconnected;
// listen addresses added, removed and moved from the wildcard to one address of the same
// port; a reload that leaves nothing to listen on fails and changes nothing.
//
// The replication mode in force is measured by behaviour: with the path to the secondary
// clogged for kClog, a fullsync write waits for it, an async write does not.
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <catch2/catch.hpp>

#include "core/config/config.h"
#include "core/fiber/channel.h"
#include "core/fiber/event.h"
#include "core/fiber/wait_queue.h"
#include "core/replication/local_component.h"
#include "core/replication/node.h"
#include "sim/node.h"
#include "sim/sim_disk.h"
#include "sim/sim_network.h"
#include "sim/world.h"

using namespace std::chrono_literals;
using hast::Duration;
using hast::Errc;
using hast::Instant;
using hast::NodeIo;
using hast::config::ResourceConfig;
using hast::meta::Role;
using hast::replication::EventRecord;
using hast::replication::HastNode;
using hast::replication::HookEvent;
using hast::replication::ReloadReport;
using hast::replication::ResourceChange;
using hast::replication::ResourceStatus;
using hast::sim::NodeId;

namespace {

constexpr NodeId kA = 0;
constexpr NodeId kB = 1;
constexpr NodeId kC = 2;
constexpr std::string_view kNames[] = {"hasta", "hastb", "hastc"};
constexpr std::string_view kHosts[] = {"10.0.0.1", "10.0.0.2", "10.0.0.3"};
constexpr Duration kClog = 300ms;
constexpr std::uint64_t kDiskBytes = 8 << 20;

// One resource of a node's hast.conf: its `on <this node>` section.
struct Res {
  std::string name;
  std::string local;
  std::string remote;  // "none" or an address
};

// A node's hast.conf.
struct Conf {
  std::vector<std::string> listen = {"tcp://0.0.0.0"};
  std::string replication = "fullsync";
  std::vector<Res> resources;

  std::string text(std::string_view node) const {
    std::string out;
    for (const std::string& address : listen)
      out += fmt::format("listen {}\n", address);
    out += fmt::format("replication {}\ntimeout 2\n", replication);
    for (const Res& res : resources) {
      out += fmt::format("resource {} {{\n  on {} {{\n    local {}\n    remote {}\n  }}\n}}\n",
                         res.name, node, res.local, res.remote);
    }
    return out;
  }
};

// The primary's frontend: the test submits single requests and waits for their answer.
class TestFrontend final : public hast::BlockFrontend {
 public:
  explicit TestFrontend(hast::fiber::Scheduler& scheduler)
      : queue_(scheduler, 16), done_(scheduler) {}

  hast::Result<hast::BlockRequest> next_request() override { return queue_.pop(); }
  void complete(const hast::BlockRequest& request, hast::Result<void> result) override {
    results_.insert_or_assign(request.id, std::move(result));
    done_.wake_all();
  }
  void close() { queue_.close(); }

  // From a fiber of the node: runs `request` and returns its result.
  hast::Result<void> run(hast::BlockRequest request) {
    request.id = next_id_++;
    HAST_TRY(queue_.push(request));
    while (!results_.contains(request.id)) {
      if (done_.wait(std::nullopt) != hast::fiber::WakeReason::woken) {
        return hast::fail(Errc::cancelled, "request wait");
      }
    }
    auto result = results_.at(request.id);
    results_.erase(request.id);
    return result;
  }

 private:
  hast::fiber::Channel<hast::BlockRequest> queue_;
  std::map<std::uint64_t, hast::Result<void>> results_;
  hast::fiber::WaitQueue done_;
  std::uint64_t next_id_ = 1;
};

// What the test knows of one node.
struct NodeState {
  Conf conf;
  std::map<std::string, hast::sim::SimDisk*> disks;         // by local path
  std::vector<std::pair<std::string, std::string>> create;  // (path, resource) at next start
  HastNode* hast = nullptr;
  std::map<std::string, TestFrontend*> frontends;  // open ones, by resource
  std::uint64_t frontend_opens = 0;
  std::vector<EventRecord> events;
};

// Every `local` path of the node is one of its SimDisks; handles live as long as the
// program.
class TestDisks final : public hast::replication::DiskProvider {
 public:
  TestDisks(hast::sim::World& world, hast::sim::SimNode& node, NodeState& state)
      : world_(world), node_(node), state_(state) {}
  hast::Result<hast::Disk*> open(const ResourceConfig& resource) override {
    return open_path(resource.local_path);
  }
  void close(const ResourceConfig&) override {}

  hast::Result<hast::Disk*> open_path(const std::string& path) {
    auto disk = state_.disks.find(path);
    if (disk == state_.disks.end()) return hast::fail(Errc::not_found, "no provider " + path);
    auto& handle = handles_[path];
    if (handle == nullptr) {
      handle = std::make_unique<hast::sim::SimDiskHandle>(world_, node_, *disk->second);
    }
    return static_cast<hast::Disk*>(handle.get());
  }

 private:
  hast::sim::World& world_;
  hast::sim::SimNode& node_;
  NodeState& state_;
  std::map<std::string, std::unique_ptr<hast::sim::SimDiskHandle>> handles_;
};

class TestFrontends final : public hast::replication::FrontendFactory {
 public:
  TestFrontends(hast::fiber::Scheduler& scheduler, NodeState& state)
      : scheduler_(scheduler), state_(state) {}
  hast::Result<std::unique_ptr<hast::BlockFrontend>> open(const ResourceConfig& resource,
                                                          std::uint64_t) override {
    auto frontend = std::make_unique<TestFrontend>(scheduler_);
    state_.frontends[resource.name] = frontend.get();
    state_.frontend_opens++;
    return std::unique_ptr<hast::BlockFrontend>(std::move(frontend));
  }
  void close(hast::BlockFrontend& frontend) override {
    auto& test = static_cast<TestFrontend&>(frontend);
    test.close();
    std::erase_if(state_.frontends, [&](const auto& entry) { return entry.second == &test; });
  }

 private:
  hast::fiber::Scheduler& scheduler_;
  NodeState& state_;
};

class Recorder final : public hast::replication::EventSink {
 public:
  explicit Recorder(NodeState& state) : state_(state) {}
  void on_event(const EventRecord& record) override { state_.events.push_back(record); }

 private:
  NodeState& state_;
};

hast::replication::Timing test_timing() {
  hast::replication::Timing timing;
  timing.keepalive = 1s;  // the secondary waits 2 s for the next message: longer than kClog
  timing.reconnect = 300ms;
  return timing;
}

class ReloadWorld {
 public:
  ReloadWorld(std::uint64_t seed, std::size_t node_count)
      : world_(seed,
               hast::sim::WorldOptions{"reload_test", false, std::getenv("HAST_ECHO") != nullptr}),
        nodes_(node_count) {
    for (NodeId id = 0; id < node_count; id++) {
      auto& node = world_.add_node(hast::sim::SimNodeOptions{.name = std::string(kNames[id]),
                                                             .hosts = {std::string(kHosts[id])},
                                                             .stack_size = 1 << 20});
      node.set_program([this, id](NodeIo& io) { program(id, io); });
      // io.disk, which the resources do not use (their providers are TestDisks).
      node.attach_disk(world_.add_disk(fmt::format("{}-unused", kNames[id]),
                                       hast::sim::SimDiskOptions{.size_bytes = 1 << 20}));
    }
  }
  // The programs refer to this fixture: end them before its members go.
  ~ReloadWorld() {
    for (NodeId id = 0; id < nodes_.size(); id++) {
      if (world_.node(id).running()) world_.node(id).kill();
    }
  }

  hast::sim::World& world() { return world_; }
  NodeState& state(NodeId id) { return nodes_[id]; }

  // A disk of node `id` at `path`, created (`hastctl create`) for `resource` now if the
  // node runs, else at its next start.
  void add_disk(NodeId id, const std::string& path, const std::string& resource) {
    auto& disk = world_.add_disk(fmt::format("{}-{}", kNames[id], path),
                                 hast::sim::SimDiskOptions{.size_bytes = kDiskBytes});
    nodes_[id].disks[path] = &disk;
    if (!world_.node(id).running()) {
      nodes_[id].create.emplace_back(path, resource);
      return;
    }
    on(id, [&](HastNode&, NodeIo&) {
      hast::sim::SimDiskHandle handle(world_, world_.node(id), disk);
      create(handle, resource);
    });
  }

  void start(NodeId id, Conf conf) {
    nodes_[id].conf = std::move(conf);
    world_.node(id).start();
    REQUIRE(world_.run_until([&] { return nodes_[id].hast != nullptr; }, world_.now() + 10s));
  }

  // Runs `body` in a fiber of node `id` and the world until it returns.
  void on(NodeId id, const std::function<void(HastNode&, NodeIo&)>& body) {
    bool done = false;
    hast::sim::SimNode& node = world_.node(id);
    HastNode& hast = *nodes_[id].hast;
    auto spawned = node.scheduler().spawn("test", [&] {
      body(hast, node.io());
      done = true;
    });
    REQUIRE(spawned.has_value());
    REQUIRE(world_.run_until([&] { return done; }, world_.now() + 600s));
  }

  // Edits the node's hast.conf and reloads it (SIGHUP).
  hast::Result<ReloadReport> reload(NodeId id, Conf conf) {
    nodes_[id].conf = std::move(conf);
    auto resolved = resolve(id);
    std::optional<hast::Result<ReloadReport>> result;
    on(id, [&](HastNode& hast, NodeIo&) { result = hast.reload(resolved); });
    return *result;
  }

  void set_role(NodeId id, const std::string& resource, Role role) {
    bool changed = false;
    on(id, [&](HastNode& hast, NodeIo&) { changed = hast.set_role(resource, role).has_value(); });
    REQUIRE(changed);
  }

  hast::Result<ResourceStatus> status(NodeId id, const std::string& resource) {
    return nodes_[id].hast->status(resource);
  }

  bool wait_status(NodeId id, const std::string& resource, std::string_view state,
                   Duration limit = 30s) {
    return world_.run_until(
        [&] {
          auto status = nodes_[id].hast->status(resource);
          return status && status->status == state && status->dirty_bytes == 0 &&
                 !status->sync.running;
        },
        world_.now() + limit);
  }

  // One 4 KiB write through the primary's frontend, with the path from `id` to `peer`
  // clogged for kClog first; returns how long the write took.
  Duration timed_write(NodeId id, NodeId peer, const std::string& resource) {
    Duration took{};
    bool ok = false;
    on(id, [&](HastNode&, NodeIo& io) {
      world_.network().clog(id, peer, kClog);
      ok = write(io, resource, took);
    });
    REQUIRE(ok);
    return took;
  }

  // From a fiber of the node.
  bool write(NodeIo& io, const std::string& resource, Duration& took) {
    TestFrontend* frontend = nodes_[io_node(io)].frontends.at(resource);
    std::vector<std::byte> data(4096, std::byte{0x5a});
    hast::BlockRequest request;
    request.op = hast::BlockOp::write;
    request.offset = 64 * 1024;
    request.length = data.size();
    request.data = data;
    Instant start = io.clock.now();
    auto result = frontend->run(request);
    took = io.clock.now() - start;
    return result.has_value();
  }

  std::uint64_t count(NodeId id, const std::string& resource, HookEvent event) const {
    std::uint64_t n = 0;
    for (const EventRecord& record : nodes_[id].events)
      n += record.resource == resource && record.event == event ? 1 : 0;
    return n;
  }

  // Whether something on `from` can open a TCP connection to `address` now.
  bool accepts(NodeId from, const std::string& address) {
    bool connected = false;
    on(from, [&](HastNode&, NodeIo& io) {
      auto parsed = hast::parse_address(address, hast::config::default_port);
      HAST_ASSERT(parsed.has_value());
      auto connection =
          io.network.connect(*parsed, std::nullopt, hast::deadline_after(io.clock, 2s));
      connected = connection.has_value();
      if (connected) (*connection)->close();
    });
    return connected;
  }

 private:
  NodeId io_node(const NodeIo& io) {
    for (NodeId id = 0; id < nodes_.size(); id++) {
      if (world_.node(id).running() && &world_.node(id).io() == &io) return id;
    }
    HAST_UNREACHABLE();
  }

  static void create(hast::Disk& disk, const std::string& resource) {
    hast::replication::CreateOptions options{256 * 1024, 8, 0};
    HAST_ASSERT(hast::replication::create_local(disk, resource, options).has_value());
  }

  hast::config::NodeConfig resolve(NodeId id) {
    auto parsed = hast::config::parse(nodes_[id].conf.text(kNames[id]));
    HAST_ASSERT_MSG(parsed.has_value(), "config: {}", parsed.error().message());
    hast::config::NodeIdentity identity;
    identity.hostname = std::string(kNames[id]);
    auto resolved = hast::config::resolve(*parsed, identity);
    HAST_ASSERT_MSG(resolved.has_value(), "resolve: {}", resolved.error().message());
    return std::move(*resolved);
  }

  void program(NodeId id, NodeIo& io) {
    NodeState& state = nodes_[id];
    TestDisks disks(world_, world_.node(id), state);
    for (const auto& [path, resource] : state.create) {
      auto disk = disks.open_path(path);
      HAST_ASSERT(disk.has_value());
      create(**disk, resource);
    }
    state.create.clear();
    TestFrontends frontends(io.scheduler, state);
    Recorder events(state);
    HastNode hast(io, resolve(id), events, frontends, test_timing(),
                  hast::replication::Mutation::none, &disks);
    HAST_ASSERT(hast.start().has_value());
    state.hast = &hast;
    hast::fiber::Event forever(io.scheduler);
    ignore_error(forever.wait(), "cancelled only when the node dies");
  }

  hast::sim::World world_;
  std::vector<NodeState> nodes_;
};

Conf pair_conf(NodeId id, std::string replication = "fullsync") {
  Conf conf;
  conf.replication = std::move(replication);
  conf.resources.push_back(
      Res{"shared", "/dev/shared", fmt::format("tcp://{}", kHosts[id == kA ? kB : kA])});
  return conf;
}

// A and B with resource `shared` (fullsync), A primary, B secondary, in sync.
void start_pair(ReloadWorld& cluster) {
  cluster.add_disk(kA, "/dev/shared", "shared");
  cluster.add_disk(kB, "/dev/shared", "shared");
  cluster.start(kA, pair_conf(kA));
  cluster.start(kB, pair_conf(kB));
  cluster.set_role(kB, "shared", Role::secondary);
  cluster.set_role(kA, "shared", Role::primary);
  REQUIRE(cluster.wait_status(kA, "shared", "complete"));
}

ResourceConfig base_resource() {
  auto parsed = hast::config::parse(
      Conf{{"tcp://0.0.0.0"}, "memsync", {Res{"r", "/dev/r", "tcp://10.0.0.2"}}}.text("hasta"));
  HAST_ASSERT(parsed.has_value());
  hast::config::NodeIdentity identity;
  identity.hostname = "hasta";
  auto resolved = hast::config::resolve(*parsed, identity);
  HAST_ASSERT(resolved.has_value());
  return resolved->resources.at(0);
}

}  // namespace

TEST_CASE("Reload: what a changed resource needs, per field and role", "[sim][reload]") {
  const ResourceConfig running = base_resource();
  struct Case {
    std::string what;
    std::function<void(ResourceConfig&)> edit;
    bool restarts_primary;
  };
  auto address = [](std::string text) {
    auto parsed = hast::parse_address(text, hast::config::default_port);
    HAST_ASSERT(parsed.has_value());
    return hast::config::ConfiguredAddress{text, *parsed};
  };
  std::vector<Case> cases = {
      {"provider name", [](auto& c) { c.provider_name = "other"; }, true},
      {"local path", [](auto& c) { c.local_path = "/dev/other"; }, true},
      {"frontend", [](auto& c) { c.frontend.kind = hast::config::FrontendKind::none; }, true},
      {"remote", [&](auto& c) { c.remote = address("tcp://10.0.0.3"); }, false},
      {"remote none", [](auto& c) { c.remote.reset(); }, false},
      {"source", [&](auto& c) { c.source = address("tcp://10.0.0.1"); }, false},
      {"replication", [](auto& c) { c.replication = hast::config::ReplicationMode::async; }, false},
      {"checksum", [](auto& c) { c.checksum = hast::config::Checksum::sha256; }, false},
      {"compression", [](auto& c) { c.compression = hast::config::Compression::lzf; }, false},
      {"timeout", [](auto& c) { c.timeout_seconds = 7; }, false},
      {"exec", [](auto& c) { c.exec_path = "/bin/true"; }, false},
      {"metaflush", [](auto& c) { c.metaflush = false; }, false},
      {"syncrate", [](auto& c) { c.syncrate_bytes_per_second = 1 << 20; }, false},
  };
  for (const Case& change : cases) {
    INFO(change.what);
    ResourceConfig next = running;
    change.edit(next);
    REQUIRE(!(next == running));
    CHECK(hast::replication::classify_change(running, next, Role::init) == ResourceChange::restart);
    CHECK(hast::replication::classify_change(running, next, Role::secondary) ==
          ResourceChange::restart);
    CHECK(hast::replication::classify_change(running, next, Role::primary) ==
          (change.restarts_primary ? ResourceChange::restart : ResourceChange::live));
  }
  ResourceConfig moved = running;
  moved.line = running.line + 10;
  for (Role role : {Role::init, Role::secondary, Role::primary})
    CHECK(hast::replication::classify_change(running, moved, role) == ResourceChange::none);
  // busypoll is the executor thread's (real/resource_thread.h): no role change for it.
  ResourceConfig polled = running;
  polled.busypoll_us = 75;
  for (Role role : {Role::init, Role::secondary, Role::primary})
    CHECK(hast::replication::classify_change(running, polled, role) == ResourceChange::none);
}

TEST_CASE("Reload: resources added in init and usable, removed ones go to init and away",
          "[sim][reload]") {
  ReloadWorld cluster(41, 2);
  start_pair(cluster);
  cluster.add_disk(kA, "/dev/second", "second");
  cluster.add_disk(kB, "/dev/second", "second");
  std::uint64_t connects = cluster.status(kA, "shared")->primary.connects;
  for (NodeId id : {kA, kB}) {
    Conf conf = pair_conf(id);
    conf.resources.push_back(Res{"second", "/dev/second", conf.resources[0].remote});
    auto report = cluster.reload(id, conf);
    REQUIRE(report.has_value());
    CHECK(report->added == std::vector<std::string>{"second"});
    CHECK(report->removed.empty());
    CHECK(report->restarted.empty());
    CHECK(report->changed_live.empty());
    CHECK(cluster.status(id, "second")->role == Role::init);
    CHECK(cluster.state(id).hast->resource_names() == std::vector<std::string>{"shared", "second"});
    CHECK(cluster.state(id).hast->config().find("second") != nullptr);
  }
  cluster.set_role(kB, "second", Role::secondary);
  cluster.set_role(kA, "second", Role::primary);
  REQUIRE(cluster.wait_status(kA, "second", "complete"));
  // `shared` did not notice.
  CHECK(cluster.status(kA, "shared")->status == "complete");
  CHECK(cluster.status(kA, "shared")->primary.connects == connects);
  CHECK(cluster.count(kA, "shared", HookEvent::role) == 1);

  for (NodeId id : {kB, kA}) {
    Conf conf = pair_conf(id);
    conf.resources[0] = Res{"second", "/dev/second", conf.resources[0].remote};
    auto report = cluster.reload(id, conf);
    REQUIRE(report.has_value());
    CHECK(report->removed == std::vector<std::string>{"shared"});
    CHECK(report->added.empty());
    CHECK(!cluster.status(id, "shared").has_value());
    CHECK(cluster.status(id, "shared").error().code() == Errc::not_found);
    CHECK(cluster.state(id).hast->resource_names() == std::vector<std::string>{"second"});
    CHECK(cluster.state(id).hast->config().resources.size() == 1);
    CHECK(cluster.count(id, "shared", HookEvent::role) == 2);  // ... → init
    CHECK(cluster.state(id).events.back().new_role == Role::init);
  }
  CHECK(cluster.wait_status(kA, "second", "complete"));
  CHECK(cluster.count(kA, "second", HookEvent::role) == 1);
}

TEST_CASE("Reload: a new local path restarts the resource in its role, with two role events",
          "[sim][reload]") {
  ReloadWorld cluster(43, 2);
  start_pair(cluster);
  cluster.add_disk(kB, "/dev/shared2", "shared");
  cluster.add_disk(kA, "/dev/shared2", "shared");

  // The secondary: secondary → init → secondary on its new (empty) provider, which the
  // primary then synchronises in full.
  Conf conf = pair_conf(kB);
  conf.resources[0].local = "/dev/shared2";
  auto report = cluster.reload(kB, conf);
  REQUIRE(report.has_value());
  CHECK(report->restarted == std::vector<std::string>{"shared"});
  CHECK(report->restart_failed.empty());
  CHECK(cluster.count(kB, "shared", HookEvent::role) == 3);
  const auto& events = cluster.state(kB).events;
  std::vector<std::pair<Role, Role>> roles;
  for (const EventRecord& record : events) {
    if (record.event == HookEvent::role) roles.emplace_back(record.old_role, record.new_role);
  }
  CHECK(roles == std::vector<std::pair<Role, Role>>{{Role::init, Role::secondary},
                                                    {Role::secondary, Role::init},
                                                    {Role::init, Role::secondary}});
  CHECK(cluster.status(kB, "shared")->role == Role::secondary);
  CHECK(cluster.status(kB, "shared")->local_path == "/dev/shared2");
  REQUIRE(cluster.wait_status(kA, "shared", "complete"));
  CHECK(cluster.status(kA, "shared")->primary.syncs_completed >= 1);

  // The primary: primary → init → primary, its frontend reopened.
  std::uint64_t opens = cluster.state(kA).frontend_opens;
  conf = pair_conf(kA);
  conf.resources[0].local = "/dev/shared2";
  report = cluster.reload(kA, conf);
  REQUIRE(report.has_value());
  CHECK(report->restarted == std::vector<std::string>{"shared"});
  CHECK(cluster.count(kA, "shared", HookEvent::role) == 3);
  CHECK(cluster.status(kA, "shared")->role == Role::primary);
  CHECK(cluster.status(kA, "shared")->local_path == "/dev/shared2");
  CHECK(cluster.state(kA).frontends.count("shared") == 1);
  CHECK(cluster.state(kA).frontend_opens == opens + 1);

  // A provider that cannot be opened: the restart ends in init, reported.
  conf = pair_conf(kB);
  conf.resources[0].local = "/dev/missing";
  report = cluster.reload(kB, conf);
  REQUIRE(report.has_value());
  CHECK(report->restart_failed == std::vector<std::string>{"shared"});
  CHECK(cluster.status(kB, "shared")->role == Role::init);
  CHECK(cluster.status(kB, "shared")->local_path == "/dev/missing");
  CHECK(cluster.count(kB, "shared", HookEvent::role) == 4);
}

TEST_CASE("Reload: a replication change applies to a live primary and survives reconnects",
          "[sim][reload]") {
  ReloadWorld cluster(47, 2);
  start_pair(cluster);
  // fullsync: a write waits for the clogged secondary.
  CHECK(cluster.timed_write(kA, kB, "shared") >= kClog - 50ms);

  // A fullsync write in flight keeps its mode while the reload switches to async.
  Duration in_flight{};
  bool written = false;
  std::optional<hast::Result<ReloadReport>> report;
  Conf async_conf = pair_conf(kA, "async");
  auto parsed = hast::config::parse(async_conf.text(kNames[kA]));
  REQUIRE(parsed.has_value());
  hast::config::NodeIdentity identity;
  identity.hostname = std::string(kNames[kA]);
  auto next = hast::config::resolve(*parsed, identity);
  REQUIRE(next.has_value());
  cluster.on(kA, [&](HastNode& hast, NodeIo& io) {
    cluster.world().network().clog(kA, kB, kClog);
    hast::fiber::TaskGroup writer(io.scheduler);
    auto spawned = writer.spawn("write", [&] { written = cluster.write(io, "shared", in_flight); });
    HAST_ASSERT(spawned.has_value());
    HAST_ASSERT(io.scheduler.sleep_for(20ms).has_value());
    report = hast.reload(*next);
    HAST_ASSERT(writer.join().has_value());
  });
  REQUIRE(report.has_value());
  REQUIRE(report->has_value());
  CHECK((*report)->changed_live == std::vector<std::string>{"shared"});
  CHECK((*report)->restarted.empty());
  CHECK(written);
  CHECK(in_flight >= kClog - 50ms);
  CHECK(cluster.status(kA, "shared")->replication == hast::config::ReplicationMode::async);
  CHECK(cluster.count(kA, "shared", HookEvent::role) == 1);  // no restart

  // New requests are async: the clogged secondary does not hold them up.
  REQUIRE(cluster.wait_status(kA, "shared", "complete"));
  CHECK(cluster.timed_write(kA, kB, "shared") < 50ms);

  // Reconnect (every connection reset): still async.
  std::uint64_t connects = cluster.status(kA, "shared")->primary.connects;
  for (auto id : cluster.world().network().live_connections())
    cluster.world().network().reset(id, hast::sim::Side::both);
  REQUIRE(cluster.world().run_until(
      [&] { return cluster.status(kA, "shared")->primary.connects > connects; },
      cluster.world().now() + 10s));
  REQUIRE(cluster.wait_status(kA, "shared", "complete"));
  CHECK(cluster.status(kA, "shared")->replication == hast::config::ReplicationMode::async);
  CHECK(cluster.timed_write(kA, kB, "shared") < 50ms);
}

TEST_CASE("Reload: a new remote on a primary drops the link and connects to the new address",
          "[sim][reload]") {
  ReloadWorld cluster(53, 3);
  start_pair(cluster);
  cluster.add_disk(kC, "/dev/shared", "shared");
  Conf c_conf;
  c_conf.resources.push_back(Res{"shared", "/dev/shared", "tcp://10.0.0.1"});
  cluster.start(kC, c_conf);
  cluster.set_role(kC, "shared", Role::secondary);
  std::uint64_t disconnects = cluster.count(kA, "shared", HookEvent::disconnect);

  auto connected_to = [&](NodeId server) {
    std::size_t n = 0;
    auto& network = cluster.world().network();
    for (auto id : network.live_connections()) {
      auto info = network.connection_info(id);
      if (info && info->client_node == kA && info->client_open) {
        if (info->server_node != server) return false;
        n++;
      }
    }
    return n == 2;
  };
  Conf conf = pair_conf(kA);
  conf.resources[0].remote = "tcp://10.0.0.3";
  auto report = cluster.reload(kA, conf);
  REQUIRE(report.has_value());
  CHECK(report->changed_live == std::vector<std::string>{"shared"});
  CHECK(cluster.count(kA, "shared", HookEvent::disconnect) == disconnects + 1);
  CHECK(cluster.status(kA, "shared")->remote == "tcp://10.0.0.3");
  // C is new to the pair: a full synchronisation, then complete.
  REQUIRE(cluster.wait_status(kA, "shared", "complete"));
  CHECK(cluster.wait_status(kC, "shared", "complete"));
  CHECK(connected_to(kC));
  CHECK(cluster.count(kA, "shared", HookEvent::role) == 1);

  // `remote none`: disconnected, and no attempt to connect anywhere.
  conf.resources[0].remote = "none";
  REQUIRE(cluster.reload(kA, conf).has_value());
  cluster.world().run_for(2s);
  CHECK(cluster.status(kA, "shared")->status == "degraded");
  CHECK(connected_to(kC) == false);
  std::uint64_t attempts = cluster.world().network().counters().connects;
  cluster.world().run_for(2s);
  CHECK(cluster.world().network().counters().connects == attempts);

  // And back to B, which still holds the pair's identity.
  conf.resources[0].remote = "tcp://10.0.0.2";
  REQUIRE(cluster.reload(kA, conf).has_value());
  REQUIRE(cluster.wait_status(kA, "shared", "complete"));
  CHECK(connected_to(kB));
}

TEST_CASE("Reload: listen addresses are added and removed; none left fails and keeps all",
          "[sim][reload]") {
  ReloadWorld cluster(59, 2);
  cluster.add_disk(kA, "/dev/shared", "shared");
  cluster.add_disk(kB, "/dev/shared", "shared");
  // B connects to A on port 9457, where A does not listen yet.
  Conf a_conf = pair_conf(kA);
  Conf b_conf = pair_conf(kB);
  b_conf.resources[0].remote = "tcp://10.0.0.1:9457";
  cluster.start(kA, a_conf);
  cluster.start(kB, b_conf);
  cluster.set_role(kA, "shared", Role::secondary);
  cluster.set_role(kB, "shared", Role::primary);
  cluster.world().run_for(2s);
  CHECK(cluster.status(kB, "shared")->status == "degraded");
  CHECK(cluster.accepts(kB, "tcp://10.0.0.1:8457"));
  CHECK(!cluster.accepts(kB, "tcp://10.0.0.1:9457"));

  a_conf.listen = {"tcp://0.0.0.0", "tcp://0.0.0.0:9457"};
  auto report = cluster.reload(kA, a_conf);
  REQUIRE(report.has_value());
  CHECK(report->listen_opened == std::vector<std::string>{"tcp://0.0.0.0:9457"});
  CHECK(report->listen_closed.empty());
  REQUIRE(cluster.wait_status(kB, "shared", "complete"));
  CHECK(cluster.accepts(kB, "tcp://10.0.0.1:8457"));

  // From the wildcard to one address of the same port (Linux refuses the overlap while
  // the wildcard listens), and 8457 dropped. The established link stays.
  std::uint64_t connects = cluster.status(kB, "shared")->primary.connects;
  a_conf.listen = {"tcp://10.0.0.1:9457"};
  report = cluster.reload(kA, a_conf);
  REQUIRE(report.has_value());
  CHECK(report->listen_opened == std::vector<std::string>{"tcp://10.0.0.1:9457"});
  CHECK(report->listen_closed == std::vector<std::string>{"tcp://0.0.0.0", "tcp://0.0.0.0:9457"});
  CHECK(report->listen_failed.empty());
  CHECK(!cluster.accepts(kB, "tcp://10.0.0.1:8457"));
  CHECK(cluster.accepts(kB, "tcp://10.0.0.1:9457"));
  CHECK(cluster.status(kB, "shared")->status == "complete");
  CHECK(cluster.status(kB, "shared")->primary.connects == connects);

  // Nothing to listen on: the reload fails, and nothing changed (not even the resources
  // or the replication mode of the same file).
  Conf bad = a_conf;
  bad.listen = {"tcp://10.9.9.9:9457"};
  bad.replication = "async";
  bad.resources.push_back(Res{"other", "/dev/other", "tcp://10.0.0.2"});
  auto failed = cluster.reload(kA, bad);
  REQUIRE(!failed.has_value());
  CHECK(failed.error().code() == Errc::unsupported);
  const auto& running = cluster.state(kA).hast->config();
  REQUIRE(running.listen.size() == 1);
  CHECK(running.listen[0].text == "tcp://10.0.0.1:9457");
  CHECK(cluster.state(kA).hast->resource_names() == std::vector<std::string>{"shared"});
  CHECK(cluster.status(kA, "shared")->replication == hast::config::ReplicationMode::fullsync);
  CHECK(cluster.status(kA, "shared")->role == Role::secondary);
  CHECK(cluster.accepts(kB, "tcp://10.0.0.1:9457"));
  CHECK(cluster.status(kB, "shared")->status == "complete");

  // A failure among several new addresses only warns.
  a_conf.listen = {"tcp://10.0.0.1:9457", "tcp://10.9.9.9:8457", "tcp://10.0.0.1:8457"};
  report = cluster.reload(kA, a_conf);
  REQUIRE(report.has_value());
  CHECK(report->listen_failed == std::vector<std::string>{"tcp://10.9.9.9:8457"});
  CHECK(report->listen_opened == std::vector<std::string>{"tcp://10.0.0.1:8457"});
  CHECK(cluster.accepts(kB, "tcp://10.0.0.1:8457"));
}
