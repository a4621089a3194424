// The control socket end to end in the simulator: hastd-like node programs (a HastNode
// plus a ControlServer on the default Unix control socket) and hastctl-like client fibers
// (ControlClient) on the same node. Checks role changes and status on a connected pair
// with FreeBSD's output, FreeBSD's answers to malformed requests without harm to the next
// good one, deadlines on silent clients, the session bound, `role primary --force` on an
// inconsistent component, FreeBSD's empty reply, and `stop`.
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "core/assert.h"
#include "core/config/config.h"
#include "core/control/client.h"
#include "core/control/format.h"
#include "core/control/server.h"
#include "core/fiber/event.h"
#include "core/meta/metadata.h"
#include "core/proto/frame.h"
#include "core/replication/node.h"
#include "sim/node.h"
#include "sim/sim_disk.h"
#include "sim/sim_network.h"
#include "sim/world.h"
#include "tests/support/node_pair.h"

using namespace std::chrono_literals;
using hast::Errc;
using hast::Instant;
using hast::NodeIo;
using hast::control::ClientStep;
using hast::control::ControlClient;
using hast::control::ControlServer;
using hast::control::ControlServerOptions;
using hast::meta::Role;
using hast::proto::Nv;
using hast::sim::NodeId;

namespace {

constexpr NodeId kA = hast::test::kPairA;
constexpr NodeId kB = hast::test::kPairB;
hast::config::ConfiguredAddress control_address() {
  auto address = hast::parse_address(hast::config::default_control, 0);
  HAST_ASSERT(address.has_value());
  return {std::string(hast::config::default_control), *address};
}

// What the test sees of one node's daemon.
struct Daemon {
  ControlServer* server = nullptr;
  bool inconsistent = false;  // mark the component inconsistent when it is created
};

// hastd's control socket beside the node: a ControlServer whose `stop` ends the program.
class DaemonParts final : public hast::test::NodeParts {
 public:
  DaemonParts(NodeIo& io, Daemon& daemon, const ControlServerOptions& options)
      : io_(io), daemon_(daemon), options_(options) {}

  void started(hast::replication::HastNode& hast, const std::function<void()>& stop) override {
    auto listener = io_.network.listen(hast.config().control.address);
    HAST_ASSERT(listener.has_value());
    server_.emplace(io_.scheduler, io_.log, hast, stop, options_);
    HAST_ASSERT(server_->start(std::move(*listener)).has_value());
    daemon_.server = &*server_;
  }
  void stopping() override {
    daemon_.server = nullptr;
    server_->stop();
  }

 private:
  NodeIo& io_;
  Daemon& daemon_;
  ControlServerOptions options_;
  std::optional<ControlServer> server_;
};

// Two nodes running the daemon program (`hastctl create` at the first start, then a
// HastNode and its control socket until `stop`); clients run as fibers on either node.
class ControlWorld {
 public:
  explicit ControlWorld(std::uint64_t seed, ControlServerOptions options = {})
      : options_(options),
        pair_(seed, {.replay_command = "control_server_test"},
              [this](NodeId id, NodeIo& io, hast::meta::Metadata* created) {
                if (created != nullptr && daemons_[id].inconsistent) {
                  created->inconsistent = true;
                  auto block = hast::meta::encode_block(*created);
                  HAST_ASSERT(io.disk.write(0, block, hast::Fua::yes).has_value());
                }
                return std::make_unique<DaemonParts>(io, daemons_[id], options_);
              }) {}

  hast::sim::World& world() { return pair_.world(); }
  Daemon& daemon(NodeId id) { return daemons_[id]; }
  // Whether node `id`'s daemon ran its `stop` and shut down.
  bool stopped(NodeId id) const { return pair_.stopped(id); }
  // Starts the node and runs the world until its control socket answers.
  void start(NodeId id) {
    pair_.start(id);
    REQUIRE(daemons_[id].server != nullptr);
  }

  // Runs `body` as a hastctl-like fiber on node `id` and the world until it returns.
  void client(NodeId id, const std::function<void(NodeIo&, ControlClient&)>& body) {
    bool done = false;
    hast::sim::SimNode& node = world().node(id);
    NodeIo& io = node.io();
    auto spawned = node.scheduler().spawn("hastctl", [&] {
      ControlClient control(io.network, io.clock, control_address(), 5s);
      body(io, control);
      done = true;
    });
    REQUIRE(spawned.has_value());
    REQUIRE(world().run_until([&] { return done; }, world().now() + 600s));
  }

 private:
  // Before pair_: the node programs refer to these until pair_ has killed them.
  ControlServerOptions options_;
  Daemon daemons_[2];
  hast::test::NodePair pair_;
};

std::vector<std::byte> bytes(std::initializer_list<int> values) {
  std::vector<std::byte> out;
  for (int value : values)
    out.push_back(static_cast<std::byte>(value));
  return out;
}

// Connects to the control socket, sends `data` as is, and returns the reply's nv, or the
// error that ended the wait for it.
hast::Result<Nv> raw_exchange(NodeIo& io, std::span<const std::byte> data) {
  auto connected = io.network.connect(control_address().address, std::nullopt,
                                      hast::deadline_after(io.clock, 5s));
  if (!connected) return hast::fail(connected.error());
  auto& connection = **connected;
  if (!data.empty()) HAST_TRY(connection.send(data, hast::deadline_after(io.clock, 5s)));
  auto message = hast::proto::recv_message(connection, {}, hast::deadline_after(io.clock, 30s));
  connection.close();
  if (!message) return hast::fail(message.error());
  return std::move(message->nv);
}

Nv request_nv(std::uint8_t cmd, std::optional<std::uint8_t> role,
              std::vector<std::string> resources) {
  Nv nv;
  if (cmd != 0) nv.add_uint8("cmd", cmd);
  if (role) nv.add_uint8("role", *role);
  for (std::size_t i = 0; i < resources.size(); i++)
    nv.add_string("resource" + std::to_string(i), resources[i]);
  return nv;
}

// Polls `status` until the resource reports `state`, for at most `limit`.
hast::proto::StatusReply wait_for_status(NodeIo& io, ControlClient& control, std::string_view state,
                                         hast::Duration limit) {
  Instant give_up = io.clock.now() + limit;
  while (true) {
    auto reply = control.status({});
    REQUIRE(reply.has_value());
    const auto& entry = reply->resources.at(0);
    if ((entry.worker && entry.worker->status == state) || io.clock.now() > give_up) return *reply;
    HAST_ASSERT(io.scheduler.sleep_for(100ms).has_value());
  }
}

}  // namespace

TEST_CASE("Control server: roles, status, list and stop on a connected pair", "[sim][control]") {
  ControlWorld cluster(21);
  cluster.start(kA);
  cluster.start(kB);

  cluster.client(kA, [](NodeIo&, ControlClient& control) {
    auto reply = control.status({});
    REQUIRE(reply.has_value());
    CHECK(hast::control::format_status(*reply) ==
          "Name\tStatus\t Role\t\tComponents\n"
          "shared\t-        init           /dev/sim\ttcp://10.0.0.2\n");
  });
  cluster.client(kB, [](NodeIo&, ControlClient& control) {
    auto reply = control.set_role(Role::secondary, {"shared"});
    REQUIRE(reply.has_value());
    CHECK(hast::control::reply_exit_code(*reply) == 0);
    REQUIRE(reply->resources.size() == 1);
    CHECK(reply->resources[0].previous_role == hast::proto::Role::init);
  });
  cluster.client(kA, [](NodeIo& io, ControlClient& control) {
    auto reply = control.set_role(Role::primary, {"all"});
    REQUIRE(reply.has_value());
    CHECK(hast::control::format_set_role_warnings(*reply).empty());
    CHECK(reply->resources.at(0).resource == "shared");
    auto status = wait_for_status(io, control, "complete", 30s);
    CHECK(hast::control::format_status(status) ==
          "Name\tStatus\t Role\t\tComponents\n"
          "shared\tcomplete primary        /dev/sim\ttcp://10.0.0.2\n");
    std::string list = hast::control::format_list(status);
    CHECK(
        list.starts_with("shared:\n  role: primary\n  provname: shared\n"
                         "  localpath: /dev/sim\n  extentsize: 262144 (256KB)\n"
                         "  keepdirty: 8\n  remoteaddr: tcp://10.0.0.2\n"
                         "  replication: memsync\n  status: complete\n  dirty: 0 (0B)\n"));
    CHECK(list.find("idle: 256\n") != std::string::npos);
    // Setting the same role again changes nothing and reports it as the previous one.
    auto again = control.set_role(Role::primary, {"shared"});
    REQUIRE(again.has_value());
    CHECK(again->resources.at(0).previous_role == hast::proto::Role::primary);
  });
  cluster.client(kB, [](NodeIo& io, ControlClient& control) {
    auto status = wait_for_status(io, control, "complete", 30s);
    CHECK(hast::control::format_status(status) ==
          "Name\tStatus\t Role\t\tComponents\n"
          "shared\tcomplete secondary      /dev/sim\ttcp://10.0.0.1\n");
    // Unknown names: ERR1 in the table, error 1 per resource, exit 1.
    auto mixed = control.status({"shared", "nope"});
    REQUIRE(mixed.has_value());
    CHECK(hast::control::format_status(*mixed).ends_with("nope\tERR1\n"));
    CHECK(hast::control::reply_exit_code(*mixed) == 1);
    auto role = control.set_role(Role::init, {"nope"});
    REQUIRE(role.has_value());
    CHECK(hast::control::format_set_role_warnings(*role) ==
          "[WARNING] [nope] Received error 1 from hastd.\n");
    CHECK(hast::control::reply_exit_code(*role) == 1);
  });

  // stop: the reply first, then the daemon sets its resources to init and exits.
  cluster.client(kA, [](NodeIo&, ControlClient& control) {
    auto reply = control.stop();
    REQUIRE(reply.has_value());
    CHECK(reply->error == 0);
    CHECK(hast::control::reply_exit_code(*reply) == 0);
  });
  REQUIRE(cluster.world().run_until([&] { return cluster.stopped(kA); },
                                    cluster.world().now() + 60s));
  cluster.client(kA, [](NodeIo&, ControlClient& control) {
    auto reply = control.status({});
    REQUIRE_FALSE(reply.has_value());
    CHECK(reply.error().step == ClientStep::connect);
    CHECK(reply.error().exit_code() == 71);
    CHECK(reply.error().message() ==
          "Unable to connect to hastd via /var/run/hastctl: Connection refused.");
  });
  // The secondary lost its primary and serves on.
  cluster.client(kB, [](NodeIo& io, ControlClient& control) {
    auto status = wait_for_status(io, control, "-", 30s);
    CHECK(hast::control::format_status(status) ==
          "Name\tStatus\t Role\t\tComponents\n"
          "shared\t-        secondary      /dev/sim\ttcp://10.0.0.1\n");
  });
}

TEST_CASE("Control server: malformed requests get FreeBSD's answers, the next is served",
          "[sim][control]") {
  ControlWorld cluster(22, ControlServerOptions{.timeout = 2s, .session_count_max = 32});
  cluster.start(kA);
  cluster.client(kA, [](NodeIo& io, ControlClient& control) {
    // Not an nv (element type 0x63): closed without a reply.
    auto garbage = bytes({0x02, 0x08, 0x00, 0x00, 0x00, 0x63, 0x6d, 0x64, 0, 0, 0, 0, 0});
    CHECK(raw_exchange(io, garbage).error().code() == Errc::disconnected);
    // A header version above 2: closed.
    auto v3 = hast::proto::encode_frame(2, request_nv(2, {}, {"all"}), {});
    v3[0] = std::byte{3};
    CHECK(raw_exchange(io, v3).error().code() == Errc::disconnected);
    // No `cmd`: closed without a reply.
    auto no_cmd = control.exchange(request_nv(0, {}, {"all"}));
    REQUIRE_FALSE(no_cmd.has_value());
    CHECK(no_cmd.error().step == ClientStep::receive);
    CHECK(no_cmd.error().exit_code() == 69);
    CHECK(no_cmd.error().message() ==
          "Unable to receive reply from hastd via /var/run/hastctl: Connection reset by peer.");
    // Unknown command: EHAST_UNIMPLEMENTED.
    auto unknown = control.exchange(request_nv(7, {}, {"all"}));
    REQUIRE(unknown.has_value());
    CHECK(unknown->get_int16("error") == hast::proto::ehast_unimplemented);
    auto decoded = hast::proto::StatusReply::from_nv(*unknown);
    CHECK(hast::control::reply_exit_code(*decoded) == 70);
    CHECK(hast::control::format_reply_error(decoded->error) ==
          "[ERROR] Error 4 received from hastd.\n");
    // set_role without a role, with a bad role, a request without resource0: EHAST_INVALID.
    auto no_role = control.exchange(request_nv(1, {}, {"shared"}));
    CHECK(no_role->get_int16("error") == hast::proto::ehast_invalid);
    auto bad_role = control.exchange(request_nv(1, 9, {"shared"}));
    CHECK(bad_role->get_int16("error") == hast::proto::ehast_invalid);
    auto no_resource = control.exchange(request_nv(2, {}, {}));
    CHECK(no_resource->get_int16("error") == hast::proto::ehast_invalid);
    // None of it changed anything; the next good request is served.
    auto status = control.status({"shared"});
    REQUIRE(status.has_value());
    CHECK(status->error == 0);
    CHECK(status->resources.at(0).role == hast::proto::Role::init);
  });
  const auto& counters = cluster.daemon(kA).server->counters();
  CHECK(counters.receive_failed == 2);
  CHECK(counters.malformed == 5);
  CHECK(counters.answered == 5);
}

TEST_CASE("Control server: a silent client is dropped at its deadline, others are served",
          "[sim][control]") {
  ControlWorld cluster(23, ControlServerOptions{.timeout = 2s, .session_count_max = 3});
  cluster.start(kA);
  cluster.client(kA, [&](NodeIo& io, ControlClient& control) {
    auto deadline = hast::deadline_after(io.clock, 5s);
    Instant opened = io.clock.now();
    std::vector<std::unique_ptr<hast::Connection>> silent;
    for (int i = 0; i < 2; i++) {
      auto connected = io.network.connect(control_address().address, std::nullopt, deadline);
      REQUIRE(connected.has_value());
      silent.push_back(std::move(*connected));
    }
    // Half a header, then nothing.
    REQUIRE(silent[1]->send(bytes({0x02, 0x10}), deadline).has_value());
    // Served at once while both wait.
    auto status = control.status({});
    REQUIRE(status.has_value());
    CHECK(io.clock.now() - opened < 1s);
    // A third silent client fills the sessions: the next client is closed at once.
    auto third = io.network.connect(control_address().address, std::nullopt, deadline);
    REQUIRE(third.has_value());
    HAST_ASSERT(io.scheduler.sleep_for(10ms).has_value());
    auto busy = control.status({});
    REQUIRE_FALSE(busy.has_value());
    CHECK(busy.error().step == ClientStep::receive);
    CHECK(io.clock.now() - opened < 1s);
    // The silent ones are closed at the server's deadline, not before.
    std::byte one[1];
    for (auto& connection : silent) {
      CHECK(connection->recv_exact(one, hast::deadline_after(io.clock, 10s)).error().code() ==
            Errc::disconnected);
    }
    CHECK(io.clock.now() - opened >= 2s);
    CHECK(io.clock.now() - opened < 3s);
    CHECK(control.status({}).has_value());
  });
  const auto& counters = cluster.daemon(kA).server->counters();
  CHECK(counters.rejected_busy == 1);
  CHECK(counters.receive_failed >= 2);
}

TEST_CASE("Control server: role primary on an inconsistent component needs --force",
          "[sim][control]") {
  ControlWorld cluster(24);
  cluster.daemon(kA).inconsistent = true;
  cluster.start(kA);
  cluster.client(kA, [](NodeIo&, ControlClient& control) {
    auto refused = control.set_role(Role::primary, {"shared"});
    REQUIRE(refused.has_value());
    CHECK(refused->resources.at(0).error == hast::proto::ehast_inconsistent);
    CHECK(hast::control::reply_exit_code(*refused) == 101);
    CHECK(hast::control::format_set_role_warnings(*refused).starts_with(
        "[WARNING] [shared] Received error 101 from hastd (the local component is "
        "inconsistent"));
    auto status = control.status({});
    CHECK(status->resources.at(0).role == hast::proto::Role::init);
    // Secondary is allowed (it is how the sync completes); the flag shows once open.
    auto secondary = control.set_role(Role::secondary, {"shared"});
    CHECK(hast::control::reply_exit_code(*secondary) == 0);
    status = control.status({});
    CHECK(status->resources.at(0).inconsistent);
    auto forced = control.set_role(Role::primary, {"shared"}, true);
    REQUIRE(forced.has_value());
    CHECK(hast::control::reply_exit_code(*forced) == 0);
    CHECK(forced->resources.at(0).previous_role == hast::proto::Role::secondary);
    status = control.status({});
    const auto& entry = status->resources.at(0);
    CHECK(entry.role == hast::proto::Role::primary);
    REQUIRE(entry.worker.has_value());
    CHECK(entry.worker->status == "degraded");  // no peer
    CHECK(entry.sync.has_value());
    CHECK(hast::control::format_list(*status).find("  inconsistent: yes\n") != std::string::npos);
    CHECK(control.set_role(Role::init, {"all"}).has_value());
  });
}

TEST_CASE("Control client: FreeBSD's empty reply reads as no resources", "[sim][control]") {
  // A FreeBSD hastd with no resources answers with an nv of size 0 (spec §3.4).
  hast::sim::World world(25);
  auto& disk = world.add_disk("disk", hast::sim::SimDiskOptions{.size_bytes = 1 << 20});
  auto& node = world.add_node(hast::sim::SimNodeOptions{.name = "n", .hosts = {"10.0.0.1"}});
  node.attach_disk(disk);
  bool done = false;
  node.set_program([&](NodeIo& io) {
    auto listener = io.network.listen(control_address().address);
    REQUIRE(listener.has_value());
    auto spawned = io.scheduler.spawn("freebsd-hastd", [&] {
      auto accepted = (*listener)->accept(std::nullopt);
      REQUIRE(accepted.has_value());
      auto request = hast::proto::recv_message(**accepted, {}, std::nullopt);
      REQUIRE(request.has_value());
      REQUIRE((*accepted)->send(bytes({0x02, 0, 0, 0, 0}), std::nullopt).has_value());
    });
    REQUIRE(spawned.has_value());
    ControlClient control(io.network, io.clock, control_address());
    auto reply = control.status({});
    REQUIRE(reply.has_value());
    CHECK(reply->resources.empty());
    CHECK(hast::control::format_status(*reply).empty());
    CHECK(hast::control::reply_exit_code(*reply) == 0);
    done = true;
  });
  node.start();
  REQUIRE(world.run_until([&] { return done; }, Instant{} + 60s));
  node.kill();
}
