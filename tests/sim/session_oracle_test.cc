// O7, no zombie writes and one primary session (sim/session_oracle.h, swarm.cc): HastNode's
// secondary ends a session before it accepts the next one, a secondary that keeps both is
// reported, and a zombie primary's writes merged silently (mutation skip_generation_raise)
// are reported.
#include <map>
#include <memory>
#include <string>

#include <catch2/catch.hpp>

#include "core/fiber/task_group.h"
#include "core/proto/frame.h"
#include "core/replication/local_component.h"
#include "core/replication/secondary.h"
#include "sim/session_oracle.h"
#include "sim/swarm.h"
#include "tests/support/sim_fixtures.h"

using namespace std::chrono_literals;
using hast::Instant;
using hast::meta::Role;
using hast::replication::Mutation;
using hast::sim::ClusterOptions;
using hast::sim::SessionOracle;
using hast::sim::SimCluster;
using hast::test::NoEvents;

namespace {

constexpr hast::sim::NodeId kA = 0;
constexpr hast::sim::NodeId kB = 1;

ClusterOptions options_for(std::uint64_t seed) {
  // keepalive 5 s: a silent primary's session outlives the test.
  return hast::test::pair_options(seed, hast::config::ReplicationMode::fullsync,
                                  {.mean_interval = 2ms,
                                   .request_bytes_max = 8 * 1024,
                                   .reconnect = 100ms,
                                   .keepalive = 5s});
}

constexpr std::string_view kConfig =
    "listen tcp://0.0.0.0\nreplication fullsync\ntimeout 1\n"
    "resource shared {\n  local /dev/sim\n  on hasta {\n    remote tcp://10.0.0.2\n  }\n"
    "  on hastb {\n    remote tcp://10.0.0.1\n  }\n}\n";

// The mutant: a secondary that serves every connection pair it is offered and never ends
// an older session when a new one arrives (HastNode's Resource::on_hello does).
void keep_every_session(hast::NodeIo& io) {
  namespace proto = hast::proto;
  namespace replication = hast::replication;
  auto parsed = hast::config::parse(kConfig);
  REQUIRE(parsed.has_value());
  hast::config::NodeIdentity host;
  host.hostname = "hastb";
  auto node = hast::config::resolve(*parsed, host);
  REQUIRE(node.has_value());
  REQUIRE(replication::create_local(io.disk, "shared", {256 * 1024, 8, 0}).has_value());
  auto local = replication::LocalComponent::open(io.disk, io.scheduler, "/dev/sim", "shared", true);
  REQUIRE(local.has_value());
  NoEvents events;
  replication::Timing timing;
  timing.timeout = 1s;
  timing.keepalive = 5s;
  replication::ResourceContext context{io, node->resources.front(), events, timing};
  auto listener = io.network.listen(node->listen.front().address);
  REQUIRE(listener.has_value());
  hast::fiber::TaskGroup sessions(io.scheduler);
  std::map<proto::Token, std::shared_ptr<hast::Connection>> firsts;
  bool split_brain_reported = false;
  while (true) {
    auto accepted = (*listener)->accept(std::nullopt);
    if (!accepted) return;
    std::shared_ptr<hast::Connection> connection = std::move(*accepted);
    auto message = proto::recv_message(*connection, proto::RecvLimits{}, std::nullopt);
    if (!message) continue;
    auto token = proto::hello_token(message->nv);
    REQUIRE(token.has_value());
    if (!token->has_value()) {
      proto::HelloReply reply;
      for (auto& byte : reply.token)
        byte = static_cast<std::uint8_t>(io.random.next_u64());
      if (proto::send_message(*connection, 2, reply.to_nv(), {}, std::nullopt)) {
        firsts[reply.token] = connection;
      }
      continue;
    }
    auto identity = proto::IdentityRequest::from_nv(message->nv);
    REQUIRE(identity.has_value());
    std::shared_ptr<hast::Connection> first = firsts[**token];
    REQUIRE(first != nullptr);
    auto spawned = sessions.spawn("session", [&, first, connection, request = *identity] {
      replication::SecondarySession session(context, **local, *first, *connection, 2,
                                            split_brain_reported);
      hast::ignore_error(session.run(request), "the test looks at the wire");
      first->close();
      connection->close();
    });
    REQUIRE(spawned.has_value());
  }
}

// The primary loses power at 1 s (its connections stay half-open at the secondary), comes
// back at 1.2 s as primary and connects again: a second session.
void restart_primary(SimCluster& cluster) {
  auto& world = cluster.world();
  world.at(Instant{} + 1s, "power loss", [&] { cluster.node(kA).power_loss(); });
  world.at(Instant{} + 1200ms, "restart", [&] { cluster.start(kA); });
  world.at(Instant{} + 1210ms, "role", [&] { cluster.set_role(kA, Role::primary); });
  world.run_for(3s);
}

std::string first_detail(const SessionOracle& oracle) {
  return oracle.violations().empty() ? "" : oracle.violations().front().detail;
}

}  // namespace

TEST_CASE("O7: HastNode's secondary ends the old session before accepting the next",
          "[sim][oracle]") {
  SimCluster cluster(options_for(41));
  SessionOracle oracle(cluster);
  cluster.start_pair(kA, kB, 50ms);
  restart_primary(cluster);
  INFO(first_detail(oracle));
  CHECK(oracle.violations().empty());
  CHECK(oracle.sessions_accepted() >= 2);
  CHECK(cluster.count_events(kA, hast::replication::HookEvent::connect) >= 1);
}

TEST_CASE("O7: a secondary serving two primary sessions at once is caught", "[sim][oracle]") {
  SimCluster cluster(options_for(41));
  SessionOracle oracle(cluster);
  cluster.node(kB).set_program([](hast::NodeIo& io) { keep_every_session(io); });
  cluster.start(kA, true);
  cluster.start(kB);
  cluster.world().at(Instant{} + 10ms, "role", [&] { cluster.set_role(kA, Role::primary); });
  cluster.world().at(Instant{} + 50ms, "workload", [&] { cluster.workload().start(); });
  restart_primary(cluster);
  REQUIRE_FALSE(oracle.violations().empty());
  const auto& violation = oracle.violations().front();
  INFO(violation.detail);
  CHECK(violation.oracle == "O7");
  CHECK(violation.detail.find("two primary sessions at once") != std::string::npos);
  CHECK(violation.detail.find("requests open") != std::string::npos);
}

TEST_CASE("O7: a zombie's writes merged silently (skip_generation_raise) are caught",
          "[sim][oracle]") {
  // Seed 5 (fullsync) runs a split-brain episode: both nodes acknowledge writes as
  // primary. Healthy, the reconnect reports the split-brain; mutated, the writes raise no
  // counter, the reconnect sees a pair in sync and a sync overwrites one side's writes.
  hast::sim::RunOptions options;
  options.seed = 5;
  options.mode = hast::config::ReplicationMode::fullsync;
  auto healthy = hast::sim::run_seed(options);
  for (const auto& violation : healthy.violations)
    CHECK(violation.oracle != "O7");
  CHECK(healthy.coverage["O7 dual-primary writes"] > 0);
  options.mutation = Mutation::skip_generation_raise;
  auto mutated = hast::sim::run_seed(options);
  bool caught = false;
  for (const auto& violation : mutated.violations) {
    INFO(violation.oracle << ": " << violation.detail);
    caught = caught || (violation.oracle == "O7" &&
                        violation.detail.find("merged silently") != std::string::npos);
  }
  CHECK(caught);
}
