// The simulated client and its frontend (see workload.h).
#include "sim/workload.h"

#include <algorithm>
#include <cmath>

#include "core/assert.h"

namespace hast::sim {
namespace {

constexpr std::size_t kFrontendQueue = 64;

Duration exponential(Random& random, Duration mean) {
  double u = unit_interval(random);
  double scaled = -std::log(1.0 - u) * static_cast<double>(mean.count());
  return Duration(static_cast<Duration::rep>(std::min(scaled, 20.0 * mean.count())));
}

}  // namespace

SimBlockFrontend::SimBlockFrontend(fiber::Scheduler& scheduler, Workload& workload, NodeId node,
                                   std::uint64_t device_size)
    : workload_(workload),
      node_(node),
      device_size_(device_size),
      queue_(scheduler, kFrontendQueue) {
  HAST_ASSERT(device_size_ > 0);
  workload_.attach(*this);
}

SimBlockFrontend::~SimBlockFrontend() {
  workload_.detach(*this);
}

Result<BlockRequest> SimBlockFrontend::next_request() {
  auto request = queue_.pop();
  if (!request) return fail(Errc::cancelled, "frontend closed");
  return request;
}

void SimBlockFrontend::complete(const BlockRequest& request, Result<void> result) {
  workload_.on_complete(request, result);
}

void SimBlockFrontend::close() {
  queue_.close();
  // Requests the core never took fail: the client sees an error, never a false success.
  while (true) {
    auto queued = queue_.try_pop();
    if (!queued) break;
    workload_.on_complete(*queued, fail(Errc::cancelled, "frontend closed"));
  }
}

bool SimBlockFrontend::offer(const BlockRequest& request) {
  return queue_.try_push(request);
}

WorkloadOptions WorkloadOptions::swarm(Random& random) {
  WorkloadOptions options;
  options.request_bytes_max = std::uint64_t{512} << uniform(random, 0, 8);  // 512 B..128 KiB
  options.read_weight = static_cast<std::uint32_t>(uniform(random, 0, 60));
  options.write_weight = static_cast<std::uint32_t>(uniform(random, 10, 60));
  options.flush_weight = static_cast<std::uint32_t>(uniform(random, 0, 15));
  options.discard_weight = static_cast<std::uint32_t>(uniform(random, 0, 8));
  options.write_zeroes_weight = static_cast<std::uint32_t>(uniform(random, 0, 8));
  options.fua_probability = chance(random, 0.5) ? 0.0 : unit_interval(random) * 0.3;
  options.mean_interval = std::chrono::microseconds(uniform(random, 50, 5000));
  options.in_flight_max = uniform(random, 1, 64);
  return options;
}

Workload::Workload(World& world, GroundTruth& truth, WorkloadOptions options)
    : world_(world), truth_(truth), options_(options), random_(world.stream("workload")) {
  HAST_ASSERT(options_.request_bytes_max >= options_.sector_size);
  HAST_ASSERT(options_.request_bytes_max % options_.sector_size == 0);
}

Workload::~Workload() {
  stop();
  HAST_ASSERT_MSG(frontends_.empty(), "workload destroyed before its frontends");
}

void Workload::start() {
  running_ = true;
  if (!next_event_) schedule_next();
}

void Workload::stop() {
  running_ = false;
  if (next_event_) world_.cancel(*next_event_);
  next_event_.reset();
}

void Workload::schedule_next() {
  HAST_ASSERT(running_);
  HAST_ASSERT(!next_event_);
  next_event_ = world_.after(exponential(random_, options_.mean_interval), "workload", [this] {
    next_event_.reset();
    issue_one();
    if (running_) schedule_next();
  });
}

void Workload::attach(SimBlockFrontend& frontend) {
  frontends_.push_back(&frontend);
}

void Workload::detach(SimBlockFrontend& frontend) {
  std::erase(frontends_, &frontend);
  // What the core took and never completed dies with the frontend: cut off, maybe applied.
  for (auto it = in_flight_.begin(); it != in_flight_.end();) {
    Op& op = it->second;
    if (op.node != frontend.node()) {
      ++it;
      continue;
    }
    if (op.write != 0) truth_.cut_off_write(op.write, world_.now());
    if (op.request.op == BlockOp::flush) truth_.cut_off_flush(op.flush, world_.now());
    counters_.cut_off++;
    it = in_flight_.erase(it);
  }
}

// True when a node other than `node` has an open frontend: it serves clients as primary.
bool Workload::another_primary(NodeId node) const {
  return std::any_of(frontends_.begin(), frontends_.end(), [node](const SimBlockFrontend* other) {
    return other->node() != node && other->open();
  });
}

void Workload::issue_one() {
  std::vector<SimBlockFrontend*> open;
  for (SimBlockFrontend* frontend : frontends_) {
    if (frontend->open()) open.push_back(frontend);
  }
  if (open.empty() || in_flight_.size() >= options_.in_flight_max) {
    counters_.refused++;
    return;
  }
  SimBlockFrontend& target = *open[uniform(random_, 0, open.size() - 1)];
  if (target.queue_.size() >= target.queue_.capacity()) {
    counters_.refused++;
    return;
  }
  Op made = make_op(target);
  std::uint64_t id = made.request.id;
  Op& op = in_flight_.emplace(id, std::move(made)).first->second;
  if (!op.buffer.empty()) op.request.data = op.buffer;
  counters_.issued++;
  bool offered = target.offer(op.request);
  HAST_ASSERT(offered);
}

Workload::Op Workload::make_op(SimBlockFrontend& frontend) {
  Op op;
  op.issue = world_.now();
  op.node = frontend.node();
  op.request.id = next_request_id_++;
  std::uint32_t total = options_.read_weight + options_.write_weight + options_.flush_weight +
                        options_.discard_weight + options_.write_zeroes_weight;
  HAST_ASSERT(total > 0);
  auto pick = static_cast<std::uint32_t>(uniform(random_, 0, total - 1));
  std::uint64_t sectors_total = frontend.device_size() / options_.sector_size;
  std::uint64_t sectors_max =
      std::min(options_.request_bytes_max / options_.sector_size, sectors_total);
  std::uint64_t sectors = uniform(random_, 1, sectors_max);
  op.request.offset = uniform(random_, 0, sectors_total - sectors) * options_.sector_size;
  op.request.length = sectors * options_.sector_size;
  if (pick < options_.read_weight) {
    op.request.op = BlockOp::read;
    op.buffer = take_buffer(op.request.length);
    std::fill(op.buffer.begin(), op.buffer.end(), std::byte{0});
  } else if ((pick -= options_.read_weight) < options_.write_weight) {
    op.request.op = BlockOp::write;
    op.request.fua = chance(random_, options_.fua_probability) ? Fua::yes : Fua::no;
    op.buffer = take_buffer(op.request.length);
    op.write = truth_.begin_write(op.request.offset, op.request.length, false, op.request.fua,
                                  op.issue, op.node);
    stamp_sectors(op.write, op.buffer);
  } else if ((pick -= options_.write_weight) < options_.flush_weight) {
    op.request.op = BlockOp::flush;
    op.request.offset = 0;
    op.request.length = 0;
    op.flush = truth_.begin_flush(op.issue);
  } else {
    pick -= options_.flush_weight;
    op.request.op = pick < options_.discard_weight ? BlockOp::discard : BlockOp::write_zeroes;
    op.write =
        truth_.begin_write(op.request.offset, op.request.length, true, Fua::no, op.issue, op.node);
  }
  return op;
}

void Workload::on_complete(const BlockRequest& request, const Result<void>& result) {
  auto found = in_flight_.find(request.id);
  HAST_ASSERT_MSG(found != in_flight_.end(), "request {} completed twice or never issued",
                  request.id);
  Op& op = found->second;
  HAST_ASSERT(op.request.op == request.op);
  bool ok = result.has_value();
  // What the client saw (which request, when, with what result) is part of the run: two
  // modes that differ only in when they answer must not hash alike.
  world_.trace("workload.complete", request.id, static_cast<std::uint64_t>(request.op),
               ok ? 0 : 1 + static_cast<std::uint64_t>(result.error().code()));
  if (op.request.op == BlockOp::read && ok) {
    truth_.check_read(op.request.offset, op.buffer, op.issue, world_.now());
  } else if (op.request.op == BlockOp::flush) {
    truth_.end_flush(op.flush, ok, world_.now());
  } else if (op.write != 0) {
    truth_.end_write(op.write, ok, world_.now());
    if (ok && another_primary(op.node)) truth_.mark_dual_primary(op.write);
  }
  ok ? counters_.completed_ok++ : counters_.completed_error++;
  recycle_buffer(std::move(op.buffer));
  in_flight_.erase(found);
}

Workload::Buffer Workload::take_buffer(std::uint64_t length) {
  Buffer buffer;
  if (!spare_buffers_.empty()) {
    buffer = std::move(spare_buffers_.back());
    spare_buffers_.pop_back();
  }
  buffer.resize(length);  // no zero-fill (UninitialisedAllocator); callers fill it whole
  return buffer;
}

void Workload::recycle_buffer(Buffer&& buffer) {
  // As many as can be in flight at once: the workload never needs more.
  if (buffer.capacity() == 0 || spare_buffers_.size() >= options_.in_flight_max) return;
  buffer.clear();
  spare_buffers_.push_back(std::move(buffer));
}

}  // namespace hast::sim
