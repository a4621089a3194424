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
#include "tests/support/handmade_secondary.h"
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
  hast::test::serve_handmade_secondary(
      io, kConfig,
      [&](hast::test::HandmadeSecondary& secondary, std::shared_ptr<hast::Connection> first,
          std::shared_ptr<hast::Connection> second,
          const hast::proto::IdentityRequest& identity) {
        auto spawned = secondary.sessions.spawn("session", [&secondary, first, second, identity] {
          hast::replication::SecondarySession session(secondary.context, secondary.local,
                                                      *first, *second, 2,
                                                      secondary.split_brain_reported);
          hast::ignore_error(session.run(identity), "the test looks at the wire");
          first->close();
          second->close();
        });
        REQUIRE(spawned.has_value());
      });
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
