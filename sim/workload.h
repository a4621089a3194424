// The simulated client: SimBlockFrontend (the BlockFrontend a simulated primary serves) and
// Workload (the actor that sends it random requests and records the ground truth).
//
// Model: a client application sits on the primary's machine, in front of the block
// device. The Workload is a world-level actor (its own random stream, world events, no
// fibers): at random instants it issues a read, write (FUA sometimes), flush, discard or
// write-zeroes of random sector-aligned size up to the request limit, to whichever
// frontend is open on a running node. Writes carry stamped data (ground_truth.h) so every
// sector read back traces to its write; every read is judged by the register oracle (O1)
// when it completes. A frontend that closes (role change) fails its queued requests; one
// whose node dies takes its in-flight requests with it: they are cut off (maybe applied).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "core/fiber/channel.h"
#include "core/io/frontend.h"
#include "sim/ground_truth.h"
#include "sim/world.h"

namespace hast::sim {

class Workload;

// The frontend of one resource on one node incarnation. Created by the node's program when
// the resource becomes primary; destroyed (or closed) when it stops being primary or the
// node dies.
class SimBlockFrontend final : public BlockFrontend {
 public:
  SimBlockFrontend(fiber::Scheduler& scheduler, Workload& workload, NodeId node,
                   std::uint64_t device_size);
  ~SimBlockFrontend() override;
  SimBlockFrontend(const SimBlockFrontend&) = delete;
  SimBlockFrontend& operator=(const SimBlockFrontend&) = delete;

  Result<BlockRequest> next_request() override;
  void complete(const BlockRequest& request, Result<void> result) override;

  // Stops serving: next_request() fails with Errc::cancelled; queued requests fail.
  void close();
  bool open() const { return !queue_.closed(); }

  NodeId node() const { return node_; }
  std::uint64_t device_size() const { return device_size_; }

 private:
  friend class Workload;
  bool offer(const BlockRequest& request);

  Workload& workload_;
  NodeId node_;
  std::uint64_t device_size_;
  fiber::Channel<BlockRequest> queue_;
};

struct WorkloadOptions {
  std::uint64_t request_bytes_max = 128 * 1024;
  std::uint32_t sector_size = 512;
  // Relative weights of the operations.
  std::uint32_t read_weight = 40;
  std::uint32_t write_weight = 40;
  std::uint32_t flush_weight = 8;
  std::uint32_t discard_weight = 4;
  std::uint32_t write_zeroes_weight = 4;
  double fua_probability = 0.1;
  // Mean time between two requests (exponential), and the bound of requests in flight.
  Duration mean_interval = std::chrono::microseconds(500);
  std::size_t in_flight_max = 32;

  static WorkloadOptions swarm(Random& random);
};

struct WorkloadCounters {
  std::uint64_t issued = 0;
  std::uint64_t completed_ok = 0;
  std::uint64_t completed_error = 0;
  std::uint64_t cut_off = 0;
  std::uint64_t refused = 0;  // no open frontend, or its queue was full
};

class Workload {
 public:
  Workload(World& world, GroundTruth& truth, WorkloadOptions options);
  ~Workload();
  Workload(const Workload&) = delete;
  Workload& operator=(const Workload&) = delete;

  // Starts issuing requests; stop() stops issuing new ones (in-flight ones still complete).
  void start();
  void stop();
  bool idle() const { return in_flight_.empty(); }

  const WorkloadCounters& counters() const { return counters_; }
  GroundTruth& truth() { return truth_; }

 private:
  friend class SimBlockFrontend;
  // A request buffer whose resize() leaves new bytes uninitialised: a write's buffer is
  // stamped whole right away, so zeroing it first would only cost time.
  template <typename T>
  struct UninitialisedAllocator : std::allocator<T> {
    template <typename U>
    struct rebind {
      using other = UninitialisedAllocator<U>;
    };
    template <typename U>
    void construct(U* p) noexcept {
      ::new (static_cast<void*>(p)) U;
    }
    template <typename U, typename... Args>
    void construct(U* p, Args&&... args) {
      ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
    }
  };
  using Buffer = std::vector<std::byte, UninitialisedAllocator<std::byte>>;

  struct Op {
    BlockRequest request;
    Buffer buffer;  // a read's is zeroed, a write's stamped
    WriteId write = 0;
    std::uint64_t flush = 0;
    Instant issue{};
    NodeId node = 0;
  };

  void attach(SimBlockFrontend& frontend);
  void detach(SimBlockFrontend& frontend);
  void on_complete(const BlockRequest& request, const Result<void>& result);
  void schedule_next();
  bool another_primary(NodeId node) const;
  void issue_one();
  Op make_op(SimBlockFrontend& frontend);
  // A buffer of `length` bytes, uninitialised: a completed request's, when one is kept.
  Buffer take_buffer(std::uint64_t length);
  void recycle_buffer(Buffer&& buffer);

  World& world_;
  GroundTruth& truth_;
  WorkloadOptions options_;
  Prng& random_;
  std::vector<SimBlockFrontend*> frontends_;  // open or not, in attach order
  std::map<std::uint64_t, Op> in_flight_;     // by request id
  // Buffers of completed requests, reused (a request's bytes are always stamped or zeroed
  // before the core sees them, so reuse changes nothing but the allocator's work).
  std::vector<Buffer> spare_buffers_;
  std::uint64_t next_request_id_ = 1;
  std::optional<EventId> next_event_;
  bool running_ = false;
  WorkloadCounters counters_;
};

}  // namespace hast::sim
