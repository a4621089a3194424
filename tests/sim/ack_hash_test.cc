// Oracle O11's trace hash covers what the client saw: which request completed, when, and
// with what result. Without it, a fault-free fullsync run and an async run of the same
// scenario hashed alike (they differ only in when the client is answered), so a change of
// acknowledgement timing could pass a determinism check unseen.
#include <string>

#include <catch2/catch.hpp>

#include "sim/scenario.h"
#include "sim/scenario_runner.h"

namespace {

std::string scenario_text(std::string_view mode) {
  return std::string(R"(name acknowledgement timing in the trace hash
config
listen tcp://0.0.0.0
replication )") + std::string(mode) + R"(
resource shared {
  local /dev/sim
  on hasta {
    remote tcp://10.0.0.2
  }
  on hastb {
    remote tcp://10.0.0.1
  }
}
end
set disk-size 8M
workload size 64K
workload rate 1000

at 0s create hasta
at 0s create hastb
at 10ms role hastb secondary
at 10ms role hasta primary
at 50ms workload start
at 500ms workload stop
at 500ms expect converged within 5s
)";
}

std::string run_hash(std::string_view mode) {
  auto scenario = hast::sim::parse_scenario(scenario_text(mode), "ack_hash.scn");
  INFO((scenario ? std::string() : scenario.error().context()));
  REQUIRE(scenario.has_value());
  hast::sim::ScenarioRunOptions options;
  options.seed = 1;
  auto report = hast::sim::run_scenario(*scenario, options);
  INFO(report.summary);
  CHECK(report.ok());
  return report.hash;
}

}  // namespace

TEST_CASE("Trace hash: fault-free runs that differ only in acknowledgement timing hash apart",
          "[sim][determinism]") {
  std::string fullsync = run_hash("fullsync");
  std::string async = run_hash("async");
  CHECK(fullsync != async);
  CHECK(run_hash("async") == async);  // and still one hash per seed
}
