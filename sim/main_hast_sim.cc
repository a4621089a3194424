// hast-sim: runs the core in the deterministic simulator.
//
//   hast-sim demo [--seed N] [--power-loss] [--blocks N] [--quiet]
//
// Exit codes: 0 every check held, 1 a check was violated, 2 an internal error or bad
// arguments. Every run prints its seed and trace hash; the same seed gives the same hash.
#include <charconv>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <string_view>

#include "sim/demo.h"

namespace {

constexpr int kExitOk = 0;
constexpr int kExitViolated = 1;
constexpr int kExitInternal = 2;

void usage() {
  std::fprintf(stderr,
               "usage: hast-sim demo [--seed N] [--power-loss] [--blocks N] [--quiet]\n");
}

bool parse_u64(const char* text, std::uint64_t& out) {
  std::string_view view(text);
  auto [end, error] = std::from_chars(view.data(), view.data() + view.size(), out);
  return error == std::errc() && end == view.data() + view.size();
}

int run_demo_command(int argc, char** argv) {
  hast::sim::DemoOptions options;
  for (int i = 2; i < argc; i++) {
    std::string_view arg(argv[i]);
    std::uint64_t value = 0;
    if (arg == "--seed" && i + 1 < argc && parse_u64(argv[i + 1], value)) {
      options.seed = value;
      i++;
    } else if (arg == "--blocks" && i + 1 < argc && parse_u64(argv[i + 1], value) &&
               value > 0 && value <= 4096) {
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

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    usage();
    return kExitInternal;
  }
  try {
    if (std::strcmp(argv[1], "demo") == 0) return run_demo_command(argc, argv);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "hast-sim: internal error: %s\n", error.what());
    return kExitInternal;
  }
  usage();
  return kExitInternal;
}
