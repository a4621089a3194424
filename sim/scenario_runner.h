// ScenarioRunner: runs one parsed scenario (scenario.h) on a SimCluster and judges it.
//
// Method. Every `at` statement becomes a world event at its time (plus the seed's jitter,
// file order kept). An action event does what an operator or a fault would (start, role,
// kill, partition, disk fault...), through the cluster's operator API. An expectation
// event checks the cluster at that instant; one with `within` stays pending and is
// re-checked before every world step until it holds or its deadline passes. The
// runner also tells the Judge (judge.h) the operator facts it can see in the script: a
// power loss of the serving primary, a promotion while the other node is dead (failover),
// still primary (split-brain) or paused (zombie), a re-created node, a swapped disk.
// `may-lose` widens the allowed loss directly in the ground truth.
//
// At `duration` the workload stops and the judge's liveness phase begins: the scenario
// must itself have brought the pair back (one primary, one secondary, connected); the
// judge then waits for convergence (O4) and returns every oracle's violations. A run
// fails (exit 1) when an expectation failed, an action could not be done as written
// (killing a node that is down), or an oracle was violated.
//
// Output: a timeline, one line per action, expectation and hook event, with the
// simulated time; each expectation says what it saw. Same scenario and seed, same trace
// hash.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/replication/mutation.h"
#include "sim/ground_truth.h"
#include "sim/scenario.h"

namespace hast::sim {

struct ScenarioRunOptions {
  std::uint64_t seed = 1;
  replication::Mutation mutation = replication::Mutation::none;
  bool node_logs = false;   // echo the nodes' log lines into the output (--timeline)
  bool keep_trace = false;  // keep every traced event (--trace FILE)
  // Receives each timeline line as it happens (nullptr: lines are only kept).
  std::function<void(const std::string&)> print;
};

struct ExpectationResult {
  int line = 0;
  std::string text;  // as written
  bool held = false;
  std::string why;  // what the cluster showed
  Instant when{};   // when it was decided
};

struct ScenarioReport {
  std::uint64_t seed = 0;
  std::string hash;
  std::string summary;  // seed, events, time, hash
  std::vector<std::string> timeline;
  std::vector<ExpectationResult> expectations;
  std::vector<std::string> action_failures;  // "line 12: kill hastb: hastb is down"
  std::vector<Violation> violations;         // the oracles'
  std::map<std::string, std::uint64_t> coverage;
  std::vector<std::string> trace;  // with keep_trace

  bool expectations_held() const;
  bool ok() const { return expectations_held() && action_failures.empty() && violations.empty(); }
};

// Runs `scenario` once. Never throws for anything the scenario does; an internal assertion
// (a bug in the code under test or the simulator) aborts with the seed, like a seed run.
ScenarioReport run_scenario(const Scenario& scenario, const ScenarioRunOptions& options);

// "hast-sim run FILE --seed N [--mutation NAME]"
std::string scenario_replay_command(const std::string& file, std::uint64_t seed,
                                    replication::Mutation mutation);

}  // namespace hast::sim
