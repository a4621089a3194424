// hast-sim: runs the replication core in the deterministic simulator.
//
//   hast-sim run [--seed N] [--mode fullsync|memsync|async] [--mutation NAME]
//                [--check-determinism] [--timeline]
//   hast-sim run FILE.scn [--seed N] [--trace FILE] [--timeline] [--mutation NAME]
//   hast-sim swarm --seeds A..B [--mode M|all] [--mutation NAME]
//   hast-sim mutations
//   hast-sim demo [--seed N] [--power-loss] [--blocks N] [--quiet]
//
// Exit codes: 0 every oracle held, 1 an oracle was violated, 2 an internal error or bad
// arguments. Every run prints its seed and trace hash; the same seed gives the same hash.
// The scenario form (scenarios/README.md) runs one .scn file: exit 0 when every
// expectation and every oracle held, 1 when one failed, 2 for a bad file or arguments.
// Without --seed it draws a seed and prints it with the command that replays the run.
#include <charconv>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "core/prng.h"
#include "sim/demo.h"
#include "sim/scenario.h"
#include "sim/scenario_runner.h"
#include "sim/swarm.h"

namespace {

constexpr int kExitOk = 0;
constexpr int kExitViolated = 1;
constexpr int kExitInternal = 2;

void usage() {
  std::fprintf(stderr,
               "usage: hast-sim run [--seed N] [--mode fullsync|memsync|async] "
               "[--mutation NAME] [--check-determinism] [--timeline]\n"
               "       hast-sim run FILE.scn [--seed N] [--trace FILE] [--timeline] "
               "[--mutation NAME]\n"
               "       hast-sim swarm --seeds A..B [--mode M|all] [--mutation NAME]\n"
               "       hast-sim mutations\n"
               "       hast-sim demo [--seed N] [--power-loss] [--blocks N] [--quiet]\n");
}

bool parse_u64(std::string_view text, std::uint64_t& out) {
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), out);
  return error == std::errc() && end == text.data() + text.size();
}

std::optional<hast::config::ReplicationMode> parse_mode(std::string_view text) {
  for (auto mode : {hast::config::ReplicationMode::fullsync, hast::config::ReplicationMode::memsync,
                    hast::config::ReplicationMode::async}) {
    if (hast::config::replication_name(mode) == text) return mode;
  }
  return std::nullopt;
}

struct Args {
  std::optional<std::uint64_t> seed;
  std::optional<hast::config::ReplicationMode> mode;
  bool all_modes = false;
  hast::replication::Mutation mutation = hast::replication::Mutation::none;
  bool check_determinism = false;
  bool timeline = false;
  std::uint64_t first = 0, last = 0;
  bool seeds = false;
};

// Parses the options shared by run and swarm; false (with a message) on a bad one.
bool parse_args(int argc, char** argv, Args& args) {
  for (int i = 2; i < argc; i++) {
    std::string_view arg(argv[i]);
    std::string_view value = i + 1 < argc ? std::string_view(argv[i + 1]) : std::string_view();
    std::uint64_t number = 0;
    if (arg == "--seed" && parse_u64(value, number)) {
      args.seed = number;
      i++;
    } else if (arg == "--mode" && value == "all") {
      args.all_modes = true;
      i++;
    } else if (arg == "--mode" && parse_mode(value)) {
      args.mode = parse_mode(value);
      i++;
    } else if (arg == "--mutation" && hast::replication::parse_mutation(value)) {
      args.mutation = *hast::replication::parse_mutation(value);
      i++;
    } else if (arg == "--seeds" && value.find("..") != std::string_view::npos &&
               parse_u64(value.substr(0, value.find("..")), args.first) &&
               parse_u64(value.substr(value.find("..") + 2), args.last) &&
               args.first <= args.last) {
      args.seeds = true;
      i++;
    } else if (arg == "--check-determinism") {
      args.check_determinism = true;
    } else if (arg == "--timeline") {
      args.timeline = true;
    } else {
      std::fprintf(stderr, "hast-sim: bad argument '%s'\n", argv[i]);
      return false;
    }
  }
  return true;
}

void print_coverage(const std::map<std::string, std::uint64_t>& coverage) {
  std::printf("coverage:");
  for (const auto& [name, value] : coverage)
    std::printf(" %s=%llu;", name.c_str(), static_cast<unsigned long long>(value));
  std::printf("\n");
}

int run_command(const Args& args) {
  hast::sim::RunOptions options;
  // Without --seed the run picks one from the trace of a fixed stream and says which.
  options.seed = args.seed.value_or(hast::derive_seed(0x48415354, "hast-sim run"));
  options.mode = args.mode;
  options.mutation = args.mutation;
  options.check_determinism = args.check_determinism;
  options.timeline = args.timeline;
  std::printf("hast-sim run: seed %llu\n", static_cast<unsigned long long>(options.seed));
  auto report = hast::sim::run_seed(options);
  std::printf("mode %s, %s\n", std::string(hast::config::replication_name(report.mode)).c_str(),
              report.summary.c_str());
  print_coverage(report.coverage);
  for (const auto& violation : report.violations) {
    std::printf("VIOLATION %s: %s\n", violation.oracle.c_str(), violation.detail.c_str());
  }
  std::printf("oracles: %s\n", report.ok() ? "all held" : "violated");
  std::printf("replay: %s\n", report.replay_command(args.mutation).c_str());
  return report.ok() ? kExitOk : kExitViolated;
}

int swarm_command(const Args& args) {
  if (!args.seeds) {
    std::fprintf(stderr, "hast-sim swarm: --seeds A..B is required\n");
    return kExitInternal;
  }
  std::map<std::string, std::uint64_t> coverage;
  std::uint64_t seeds = 0, violations = 0;
  for (std::uint64_t seed = args.first; seed <= args.last; seed++) {
    std::vector<std::optional<hast::config::ReplicationMode>> modes = {args.mode};
    if (args.all_modes) {
      modes = {hast::config::ReplicationMode::fullsync, hast::config::ReplicationMode::memsync,
               hast::config::ReplicationMode::async};
    }
    for (auto mode : modes) {
      hast::sim::RunOptions options;
      options.seed = seed;
      options.mode = mode;
      options.mutation = args.mutation;
      auto report = hast::sim::run_seed(options);
      seeds++;
      for (const auto& [name, value] : report.coverage)
        coverage[name] += value;
      if (report.ok()) continue;
      violations++;
      std::printf("seed %llu: %s: %s; replay: %s\n", static_cast<unsigned long long>(seed),
                  report.violations.front().oracle.c_str(),
                  report.violations.front().detail.c_str(),
                  report.replay_command(args.mutation).c_str());
    }
  }
  print_coverage(coverage);
  std::printf("seeds: %llu, violations: %llu\n", static_cast<unsigned long long>(seeds),
              static_cast<unsigned long long>(violations));
  return violations == 0 ? kExitOk : kExitViolated;
}

int demo_command(int argc, char** argv) {
  hast::sim::DemoOptions options;
  for (int i = 2; i < argc; i++) {
    std::string_view arg(argv[i]);
    std::uint64_t value = 0;
    if (arg == "--seed" && i + 1 < argc && parse_u64(argv[i + 1], value)) {
      options.seed = value;
      i++;
    } else if (arg == "--blocks" && i + 1 < argc && parse_u64(argv[i + 1], value) && value > 0 &&
               value <= 4096) {
      options.block_count = static_cast<std::uint32_t>(value);
      i++;
    } else if (arg == "--power-loss") {
      options.power_loss = true;
    } else if (arg == "--quiet") {
      options.print = false;
    } else {
      std::fprintf(stderr, "hast-sim demo: bad argument '%s'\n", argv[i]);
      usage();
      return kExitInternal;
    }
  }
  std::printf("hast-sim demo: seed %llu\n", static_cast<unsigned long long>(options.seed));
  auto result = hast::sim::run_demo(options);
  std::printf("%s\n", result.summary.c_str());
  std::printf("replay: hast-sim demo --seed %llu%s\n",
              static_cast<unsigned long long>(options.seed),
              options.power_loss ? " --power-loss" : "");
  return result.replicas_identical ? kExitOk : kExitViolated;
}

struct ScenarioArgs {
  std::string file;
  std::optional<std::uint64_t> seed;
  std::string trace_file;
  bool timeline = false;
  hast::replication::Mutation mutation = hast::replication::Mutation::none;
};

bool parse_scenario_args(int argc, char** argv, ScenarioArgs& args) {
  for (int i = 2; i < argc; i++) {
    std::string_view arg(argv[i]);
    bool has_value = i + 1 < argc;
    std::string_view value = has_value ? std::string_view(argv[i + 1]) : std::string_view();
    std::uint64_t number = 0;
    if (arg == "--seed" && parse_u64(value, number)) {
      args.seed = number;
    } else if (arg == "--trace" && has_value && !value.empty()) {
      args.trace_file = std::string(value);
    } else if (arg == "--mutation" && hast::replication::parse_mutation(value)) {
      args.mutation = *hast::replication::parse_mutation(value);
    } else if (arg == "--timeline") {
      args.timeline = true;
      continue;
    } else if (arg.ends_with(".scn") && args.file.empty()) {
      args.file = std::string(arg);
      continue;
    } else {
      std::fprintf(stderr, "hast-sim run: bad argument '%s'\n", argv[i]);
      return false;
    }
    i++;
  }
  return true;
}

bool is_scenario_run(int argc, char** argv) {
  for (int i = 2; i < argc; i++) {
    if (std::string_view(argv[i]).ends_with(".scn")) return true;
  }
  return false;
}

void print_scenario_report(const hast::sim::ScenarioReport& report, const std::string& replay) {
  std::size_t held = 0;
  for (const auto& result : report.expectations)
    held += result.held ? 1 : 0;
  std::printf("expectations: %zu held, %zu failed\n", held, report.expectations.size() - held);
  for (const auto& result : report.expectations) {
    if (!result.held) {
      std::printf("FAILED line %d: %s: %s\n", result.line, result.text.c_str(), result.why.c_str());
    }
  }
  for (const auto& failure : report.action_failures) {
    std::printf("FAILED action %s\n", failure.c_str());
  }
  // The register oracle reports every sector of a bad read: the first ones tell the story.
  constexpr std::size_t kViolationsShown = 20;
  for (std::size_t i = 0; i < report.violations.size() && i < kViolationsShown; i++) {
    const auto& violation = report.violations[i];
    std::printf("VIOLATION %s: %s\n", violation.oracle.c_str(), violation.detail.c_str());
  }
  if (report.violations.size() > kViolationsShown) {
    std::printf("... and %zu more violations\n", report.violations.size() - kViolationsShown);
  }
  print_coverage(report.coverage);
  std::printf("%s\n", report.summary.c_str());
  std::printf("result: %s\n", report.ok() ? "ok" : "FAILED");
  std::printf("replay: %s\n", replay.c_str());
}

int scenario_command(int argc, char** argv) {
  ScenarioArgs args;
  if (!parse_scenario_args(argc, argv, args)) {
    usage();
    return kExitInternal;
  }
  std::ifstream in(args.file, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "hast-sim run: cannot open %s\n", args.file.c_str());
    return kExitInternal;
  }
  std::stringstream text;
  text << in.rdbuf();
  auto scenario = hast::sim::parse_scenario(text.str(), args.file);
  if (!scenario) {
    std::fprintf(stderr, "%s\n", scenario.error().context().c_str());
    return kExitInternal;
  }
  std::uint64_t seed = args.seed ? *args.seed : std::random_device{}() % 1'000'000'000;
  std::string replay = hast::sim::scenario_replay_command(args.file, seed, args.mutation);
  std::printf("hast-sim run %s: seed %llu%s\n", args.file.c_str(),
              static_cast<unsigned long long>(seed), args.seed ? "" : " (drawn)");
  hast::sim::ScenarioRunOptions options;
  options.seed = seed;
  options.mutation = args.mutation;
  options.node_logs = args.timeline;
  options.keep_trace = !args.trace_file.empty();
  options.print = [](const std::string& line) { std::printf("%s\n", line.c_str()); };
  auto report = hast::sim::run_scenario(*scenario, options);
  if (!args.trace_file.empty()) {
    std::ofstream out(args.trace_file);
    for (const auto& line : report.trace)
      out << line << '\n';
    if (!out) {
      std::fprintf(stderr, "hast-sim run: cannot write %s\n", args.trace_file.c_str());
      return kExitInternal;
    }
  }
  print_scenario_report(report, replay);
  return report.ok() ? kExitOk : kExitViolated;
}

int dispatch(int argc, char** argv) {
  std::string_view command(argv[1]);
  if (command == "run" && is_scenario_run(argc, argv)) return scenario_command(argc, argv);
  if (command == "demo") return demo_command(argc, argv);
  if (command == "mutations") {
    for (const auto& info : hast::replication::mutations()) {
      std::printf("%s\n", std::string(info.name).c_str());
    }
    return kExitOk;
  }
  Args args;
  if (!parse_args(argc, argv, args)) {
    usage();
    return kExitInternal;
  }
  if (command == "run") return run_command(args);
  if (command == "swarm") return swarm_command(args);
  usage();
  return kExitInternal;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    usage();
    return kExitInternal;
  }
  try {
    return dispatch(argc, argv);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "hast-sim: internal error: %s\n", error.what());
    return kExitInternal;
  }
}
