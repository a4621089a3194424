// Swarm fuzzing: the fuzzer's bytes choose a simulator run — the replication mode, the
// seed (workload, latencies, choices inside a fault), hast.conf's timeout, disk errors on
// or off, the safety phase's length and an explicit fault schedule — which runs on a
// SimCluster judged by every oracle (sim/judge.h). A violation prints the plan and the
// violations and traps, so coverage (of core/, instrumented) guides the search for
// protocol bugs rather than decoder bugs.
//
// Input layout (missing bytes read as zero):
//   [0]     mode: % 3 (fullsync, memsync, async)
//   [1..2]  seed - 1, little-endian
//   [3]     bits 0-1: timeout - 1 (% 3); bit 2: disk errors; bits 3-4: safety phase
//           1 s + 1 s * value
//   then up to 8 pairs [when, what]: the fault swarm_fault_name(what % 12) at
//           200 ms + when / 256 * (safety phase - 400 ms)
// FUZZ_SWARM_VERBOSE=1 in the environment prints each run's plan and coverage.
// Fibers under ASan need Boost.Context's ucontext backend with its hooks: the clang
// build (-DHAST_FUZZ=ON) defines BOOST_USE_UCONTEXT and BOOST_USE_ASAN.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <fmt/format.h>

#include "sim/swarm.h"

namespace {

using namespace std::chrono_literals;

constexpr std::size_t kHeader = 4;
constexpr std::size_t kFaultsMax = 8;

std::uint8_t byte_at(const std::uint8_t* data, std::size_t size, std::size_t at) {
  return at < size ? data[at] : 0;
}

hast::sim::RunOptions plan(const std::uint8_t* data, std::size_t size) {
  hast::sim::RunOptions options;
  options.mode = static_cast<hast::config::ReplicationMode>(byte_at(data, size, 0) % 3);
  options.seed = 1 + (byte_at(data, size, 1) | std::uint64_t{byte_at(data, size, 2)} << 8);
  std::uint8_t knobs = byte_at(data, size, 3);
  options.timeout_seconds = 1 + (knobs & 3) % 3;
  options.disk_faults = (knobs & 4) != 0;
  options.safety_phase = 1s + 1s * ((knobs >> 3) & 3);
  std::vector<hast::sim::PlannedFault> schedule;
  hast::Duration span = options.safety_phase - 400ms;
  for (std::size_t at = kHeader; at + 1 < size && schedule.size() < kFaultsMax; at += 2) {
    hast::Duration when = 200ms + span * data[at] / 256;
    auto fault = static_cast<hast::sim::SwarmFault>(data[at + 1] % hast::sim::swarm_fault_kinds);
    schedule.push_back(hast::sim::PlannedFault{when, fault});
  }
  options.schedule = std::move(schedule);
  return options;
}

std::string describe(const hast::sim::RunOptions& options) {
  std::string text = fmt::format("mode {}, seed {}, timeout {} s, disk errors {}, safety {} ms:",
                                 hast::config::replication_name(*options.mode), options.seed,
                                 *options.timeout_seconds, *options.disk_faults ? "on" : "off",
                                 options.safety_phase / 1ms);
  for (const auto& planned : *options.schedule) {
    text += fmt::format(" {}@{}ms", hast::sim::swarm_fault_name(planned.fault), planned.at / 1ms);
  }
  return text;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  hast::sim::RunOptions options = plan(data, size);
  hast::sim::RunReport report = hast::sim::run_seed(options);
  if (std::getenv("FUZZ_SWARM_VERBOSE") != nullptr) {  // what a corpus input exercises
    std::string coverage;
    for (const auto& [name, value] : report.coverage) {
      coverage += fmt::format("{}={}; ", name, value);
    }
    std::fprintf(stderr, "fuzz_swarm: %s\n  %s\n  %s\n", describe(options).c_str(),
                 report.summary.c_str(), coverage.c_str());
  }
  if (report.ok()) return 0;
  std::fprintf(stderr, "fuzz_swarm: %s\n", describe(options).c_str());
  for (const auto& violation : report.violations) {
    std::fprintf(stderr, "  %s: %s\n", violation.oracle.c_str(), violation.detail.c_str());
  }
  std::fflush(stderr);
  __builtin_trap();
}
