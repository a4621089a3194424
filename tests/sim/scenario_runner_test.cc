// The scenario runner (sim/scenario_runner.h): the checks bite. A wrong expectation fails
// the run, saying what it saw; an impossible action fails it; a mutation fails the
// split-brain scenario by the oracle that exists for it; one seed gives one hash.
#include <fstream>
#include <sstream>
#include <string>

#include <catch2/catch.hpp>

#include "sim/scenario.h"
#include "sim/scenario_runner.h"
#include "tests/support/sim_fixtures.h"

using hast::replication::Mutation;
using hast::sim::ScenarioReport;

namespace {

std::string read_scenario(const std::string& name) {
  std::ifstream in(std::string(HAST_SOURCE_DIR) + "/scenarios/" + name, std::ios::binary);
  REQUIRE(in.good());
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

ScenarioReport run_text(const std::string& text, std::uint64_t seed = 1,
                        Mutation mutation = Mutation::none) {
  auto scenario = hast::sim::parse_scenario(text, "test.scn");
  INFO((scenario ? std::string() : scenario.error().context()));
  REQUIRE(scenario.has_value());
  hast::sim::ScenarioRunOptions options;
  options.seed = seed;
  options.mutation = mutation;
  return hast::sim::run_scenario(*scenario, options);
}

std::string timeline(const ScenarioReport& report) {
  std::string text;
  for (const auto& line : report.timeline)
    text += line + "\n";
  return text;
}

// The pair's hast.conf (tests/support/sim_fixtures.h), a small disk and a short workload.
const std::string kSmall =
    "config\n" + std::string(hast::test::kPairConfig) +
    "end\n"
    "set disk-size 4M\n"
    "workload rate 500\n"
    "workload size 16K\n"
    "workload run 50ms 1s\n"
    "at 0s create hasta\n"
    "at 0s create hastb\n"
    "at 10ms role hastb secondary\n"
    "at 10ms role hasta primary\n";

}  // namespace

TEST_CASE("scenario runner: a scenario whose expectations hold passes", "[scenario]") {
  auto report = run_text(kSmall +
                         "at 500ms expect hasta role primary status complete\n"
                         "at 1s expect converged within 3s\n"
                         "at 1s expect hasta holds acked\n");
  INFO(timeline(report));
  CHECK(report.ok());
  REQUIRE(report.expectations.size() == 3);
  CHECK(report.expectations[0].held);
  CHECK_THAT(report.expectations[0].why, Catch::Contains("role primary, status complete"));
}

TEST_CASE("scenario runner: a wrong expectation fails the run and says what it saw", "[scenario]") {
  // The secondary is up and connected: `degraded` is wrong, and so is `down`.
  auto report = run_text(kSmall +
                         "at 500ms expect hasta status degraded\n"
                         "at 500ms expect hastb down\n"
                         "at 500ms expect hastb role secondary within 1s\n");
  INFO(timeline(report));
  CHECK_FALSE(report.ok());
  CHECK(report.violations.empty());  // the oracles have nothing against the run itself
  REQUIRE(report.expectations.size() == 3);
  CHECK_FALSE(report.expectations[0].held);
  CHECK_THAT(report.expectations[0].why, Catch::Contains("status complete"));
  CHECK_FALSE(report.expectations[1].held);
  CHECK_THAT(report.expectations[1].why, Catch::Contains("hastb is running"));
  CHECK(report.expectations[2].held);
}

TEST_CASE("scenario runner: a `within` expectation that never holds fails at its deadline",
          "[scenario]") {
  auto report = run_text(kSmall + "at 200ms expect split-brain within 500ms\n");
  INFO(timeline(report));
  CHECK_FALSE(report.ok());
  REQUIRE(report.expectations.size() == 1);
  CHECK_FALSE(report.expectations[0].held);
  CHECK(report.expectations[0].when == hast::Instant{} + std::chrono::milliseconds(700));
}

TEST_CASE("scenario runner: an action that cannot be done as written fails the run", "[scenario]") {
  auto report = run_text(kSmall + "at 300ms swap-disk hastb empty\n");
  INFO(timeline(report));
  CHECK_FALSE(report.ok());
  REQUIRE(report.action_failures.size() == 1);
  CHECK_THAT(report.action_failures[0], Catch::Contains("hastb is running"));
}

TEST_CASE("scenario runner: forgetting an allowed loss is caught by the oracles", "[scenario]") {
  // row05-failover-async declares `may-lose` before promoting the secondary; without it
  // the async writes the secondary never stored count as lost (O1/O2).
  std::string text = read_scenario("row05-failover-async.scn");
  auto at = text.find("at 1.1s may-lose hasta since connect\n");
  REQUIRE(at != std::string::npos);
  auto with = run_text(text);
  INFO(timeline(with));
  CHECK(with.ok());
  text.erase(at, std::string("at 1.1s may-lose hasta since connect\n").size());
  auto without = run_text(text);
  INFO(timeline(without));
  CHECK_FALSE(without.ok());
}

TEST_CASE("scenario runner: the split-brain scenario fails under ignore_split_brain, by O6",
          "[scenario]") {
  std::string text = read_scenario("row08-split-brain.scn");
  auto clean = run_text(text);
  INFO(timeline(clean));
  CHECK(clean.ok());
  auto mutated = run_text(text, 1, Mutation::ignore_split_brain);
  INFO(timeline(mutated));
  CHECK_FALSE(mutated.ok());
  bool o6 = false;
  for (const auto& violation : mutated.violations)
    o6 = o6 || violation.oracle == "O6";
  CHECK(o6);
  bool expectation_failed = false;
  for (const auto& result : mutated.expectations) {
    expectation_failed = expectation_failed || (!result.held && result.line > 0);
  }
  CHECK(expectation_failed);  // `expect split-brain` saw none
}

TEST_CASE("scenario runner: the same scenario and seed give the same trace hash", "[scenario]") {
  std::string text = read_scenario("row07-partition-memsync.scn");
  auto first = run_text(text, 7);
  auto second = run_text(text, 7);
  auto other = run_text(text, 8);
  CHECK(first.hash == second.hash);
  CHECK(first.timeline == second.timeline);
  CHECK(first.hash != other.hash);
}

TEST_CASE("scenario runner: each row's scenario fails under the mutation it exists for",
          "[scenario]") {
  struct Case {
    const char* file;
    Mutation mutation;
    const char* oracle;
  };
  const Case cases[] = {
      {"row14-gray-failure-fullsync.scn", Mutation::wait_forever_for_remote, "O10"},
      {"row10-primary-read-eio.scn", Mutation::read_fallback_when_stale, "O1"},
      {"row05-failover-memsync-secondary-alive.scn", Mutation::memsync_ack_before_received, "O1"},
      {"row05-failover-fullsync.scn", Mutation::fullsync_ack_before_remote, "O8"},
      {"row03-primary-crash-async.scn", Mutation::skip_activemap_flush, "O3"},
      {"row01-secondary-crash-memsync.scn", Mutation::sync_wrong_direction, "O1"},
  };
  for (const Case& c : cases) {
    INFO(c.file << " under " << hast::replication::mutation_name(c.mutation));
    std::string text = read_scenario(c.file);
    auto clean = run_text(text);
    CHECK(clean.ok());
    auto mutated = run_text(text, 1, c.mutation);
    bool caught = false;
    for (const auto& violation : mutated.violations)
      caught = caught || violation.oracle == c.oracle;
    CHECK(caught);
  }
}

TEST_CASE("scenario runner: jitter delays actions from the seed, keeping their order",
          "[scenario]") {
  auto report = run_text(kSmall +
                         "set jitter 50ms\n"
                         "at 300ms partition hasta hastb\n"
                         "at 300ms heal\n"
                         "at 300ms expect hasta role primary\n");
  INFO(timeline(report));
  std::string partition, heal, expect;
  for (const auto& line : report.timeline) {
    if (line.find("partition hasta hastb") != std::string::npos) partition = line.substr(0, 10);
    if (line.find("  heal") != std::string::npos) heal = line.substr(0, 10);
    if (line.find("expect hasta role primary") != std::string::npos) expect = line.substr(0, 10);
  }
  REQUIRE_FALSE(partition.empty());
  CHECK(partition != "0.300000s");  // delayed (a zero draw is possible, not for seed 1)
  CHECK(partition <= heal);         // never reordered (same width: text order is time order)
  CHECK(heal <= expect);            // an expectation waits for the lines before it
}
