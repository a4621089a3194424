// The smoke demo of the runtime: two simulated nodes replicate a stream of blocks over
// SimNetwork onto their SimDisks while the receiver crashes and restarts.
//
// What it shows: fibers on two schedulers, disk writes with FUA, a TCP-like connection
// with latency, a kill (or power loss) of one node in the middle of the transfer, the
// sender noticing, reconnecting with back-off and resuming from the last acknowledged
// block, and at the end both disks holding the same bytes. Every line printed comes from
// the simulation; the run ends with the seed and the trace hash, and the same seed always
// prints the same hash. Later issues replace this with the real HAST walk-through.
#pragma once

#include <cstdint>
#include <string>

namespace hast::sim {

struct DemoOptions {
  std::uint64_t seed = 1;
  std::uint32_t block_count = 64;
  bool power_loss = false;  // cut the receiver's power instead of killing its process
  bool print = true;        // print the timeline to stdout
};

struct DemoResult {
  bool replicas_identical = false;
  std::uint32_t blocks_acknowledged = 0;
  std::uint32_t reconnects = 0;
  std::string summary;  // seed, events, virtual time, trace hash
  std::string hash;
  std::uint64_t events = 0;
  double simulated_seconds = 0;
};

DemoResult run_demo(const DemoOptions& options);

}  // namespace hast::sim
