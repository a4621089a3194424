// hastd [-dFh] [-c config] [-P pidfile] [--node NAME]: the daemon (real/daemon.h).
#include <malloc.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "real/daemon.h"

namespace {

constexpr int ex_usage = 64;

void usage() {
  std::fputs("usage: hastd [-dFh] [-c config] [-P pidfile] [--node NAME]\n", stderr);
}

// A positive number of milliseconds for a test-only knob, or nullopt.
std::optional<hast::Duration> milliseconds(const char* text) {
  char* end = nullptr;
  long value = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || value <= 0) return std::nullopt;
  return std::chrono::milliseconds(value);
}

// Request buffers are allocated and freed at a high rate. Those up to 4 MiB come from
// the BufferPool (real/pooled_new.cc), the rest from malloc, whose defaults serve large
// blocks from mmap, or give the heap's top back to the kernel after a burst, so each would
// cost page faults and the kernel's zeroing. Keep the rest on the heap too.
void tune_allocator() {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 128 << 20);
}

}  // namespace

int main(int argc, char** argv) {
  tune_allocator();
  hast::real::DaemonOptions options;
  for (int i = 1; i < argc; i++) {
    std::string_view arg = argv[i];
    auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    if (arg == "-h") {
      usage();
      return ex_usage;
    } else if (arg == "-F") {
      options.foreground = true;
    } else if (arg == "-d") {
      options.debug++;
    } else if (arg == "-c" || arg == "-P" || arg == "--node" || arg == "--test-keepalive-ms" ||
               arg == "--test-reconnect-ms") {
      const char* text = value();
      if (text == nullptr) {
        fmt::print(stderr, "hastd: option {} requires an argument\n", arg);
        usage();
        return ex_usage;
      }
      if (arg == "-c") options.config_path = text;
      if (arg == "-P") options.pidfile = text;
      if (arg == "--node") options.node = text;
      if (arg.starts_with("--test-")) {
        auto duration = milliseconds(text);
        if (!duration) {
          fmt::print(stderr, "hastd: {} needs a positive number of milliseconds\n", arg);
          return ex_usage;
        }
        (arg == "--test-keepalive-ms" ? options.keepalive : options.reconnect) = duration;
      }
    } else if (arg.size() > 1 && arg[0] == '-' && arg[1] != '-' &&
               arg.find_first_not_of("dF", 1) == std::string_view::npos) {
      for (char flag : arg.substr(1)) {
        if (flag == 'd') options.debug++;
        if (flag == 'F') options.foreground = true;
      }
    } else {
      fmt::print(stderr, "hastd: unknown argument {}\n", arg);
      usage();
      return ex_usage;
    }
  }
  return hast::real::run_hastd(options);
}
