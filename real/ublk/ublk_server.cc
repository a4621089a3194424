// The ublk server (see ublk_server.h): start-up, the tag fibers, completion, closing.
//
// Method: a tag's fiber owns the tag's commands: it is the only one that fetches and
// commits for it, so the kernel sees at most one command per tag, as it requires. An Io
// is shared by its tag's fiber and its parts in parts_ (the core's view), so the buffer a
// part points into outlives the request's answer until complete() drops the last part.
//
// Invariants: every part in parts_ is in queue_ or taken by the core; an Io's
// parts_pending counts exactly its entries in parts_; tags_armed_ + tags_ended_ never
// exceeds tags_.size().
#include "real/ublk/ublk_server.h"
#include "real/ring.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <utility>

#include <fmt/format.h>

namespace hast::real::ublk {
namespace {

bool is_power_of_two(std::uint64_t value) {
  return value != 0 && (value & (value - 1)) == 0;
}

// The most discard and write_zeroes sectors one request may carry (the server splits).
constexpr std::uint32_t discard_sectors_max = 1U << 20;  // 512 MiB

Errc errc_of_errno(int error) {
  switch (error) {
    case ENOENT:
    case ENODEV:
      return Errc::not_found;
    case EPERM:
    case EACCES:
      return Errc::refused;
    case EBUSY:
    case EEXIST:
      return Errc::busy;
    case EINVAL:
      return Errc::invalid_argument;
    case EOPNOTSUPP:
      return Errc::unsupported;
    default:
      return Errc::io;
  }
}

}  // namespace

// One request of the kernel, from its fetch to its commit (and to its last part).
struct UblkServer::Io {
  explicit Io(fiber::Scheduler& scheduler) : changed(scheduler) {}

  BlockOp op = BlockOp::read;
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  Fua fua = Fua::no;
  // The tag's buffer when the request arrived: read and write parts point into it.
  std::shared_ptr<std::vector<std::byte>> buffer;
  std::size_t parts_pending = 0;  // queued or taken by the core, not completed
  std::optional<Error> error;     // of the first part that failed
  bool aborted = false;           // close(): answer -EIO now, without waiting for parts
  fiber::WaitQueue changed;       // a part completed or the request was aborted
};

struct UblkServer::Tag {
  std::uint16_t queue = 0;
  std::uint16_t tag = 0;
  std::shared_ptr<std::vector<std::byte>> buffer;
  std::shared_ptr<Io> current;  // the request being served
};

UblkServer::UblkServer(fiber::Scheduler& scheduler, UblkKernel& kernel, Log& log,
                       UblkServerOptions options)
    : scheduler_(scheduler),
      kernel_(kernel),
      log_(log),
      options_(std::move(options)),
      tags_changed_(scheduler),
      tag_fibers_(scheduler),
      control_fiber_(scheduler),
      start_changed_(scheduler),
      queue_(scheduler, options_.queue_capacity) {
  const UblkServerOptions& o = options_;
  HAST_ASSERT(is_power_of_two(o.sector_size));
  HAST_ASSERT(o.sector_size >= 512 && o.sector_size <= 4096);
  HAST_ASSERT_MSG(o.size % o.sector_size == 0, "device size {} not a multiple of {}", o.size,
                  o.sector_size);
  HAST_ASSERT(o.queues > 0);
  HAST_ASSERT(o.queue_depth > 0 && o.queue_depth <= queue_depth_max);
  HAST_ASSERT(o.io_bytes_max >= o.sector_size && o.io_bytes_max % o.sector_size == 0);
  HAST_ASSERT(o.part_bytes_max >= o.sector_size && o.part_bytes_max % o.sector_size == 0);
  HAST_ASSERT(o.discard_part_bytes_max >= o.sector_size);
  HAST_ASSERT(o.discard_part_bytes_max % o.sector_size == 0);
  HAST_ASSERT(o.queue_capacity > 0);
}

UblkServer::~UblkServer() {
  HAST_ASSERT_MSG(parts_.empty() || scheduler_.is_shut_down(),
                  "ublk server destroyed while the core holds {} of its requests", parts_.size());
  HAST_ASSERT_MSG(tag_fibers_.size() == 0 || scheduler_.is_shut_down(),
                  "ublk server destroyed while serving: close() it from a fiber first");
  HAST_ASSERT_MSG(control_fiber_.size() == 0 || scheduler_.is_shut_down(),
                  "ublk server destroyed while starting: close() it from a fiber first");
}

// ---- Start-up ----

Result<void> UblkServer::start() {
  HAST_ASSERT(state_ == UblkState::created);
  HAST_ASSERT(scheduler_.in_fiber());
  bool recovery = options_.recover_dev_id.has_value();
  state_ = recovery ? UblkState::recovering : UblkState::starting;
  auto attached = recovery ? attach_recovery() : add_device();
  if (!attached) {
    // Nothing serves yet; a device we added is ours to delete.
    if (dev_id_ && !recovery) delete_device();
    state_ = UblkState::closed;
    closed_ = true;
    queue_.close();
    start_result_ = attached;
    return attached;
  }
  auto served = serve_queues();
  if (!served) {
    abandon_start(!recovery);
    start_result_ = served;
    return served;
  }
  // Every tag has its FETCH outstanding: the last command may go, in the background.
  auto spawned = control_fiber_.spawn("ublk-start", [this, recovery] { finish_start(recovery); });
  if (!spawned) {
    abandon_start(!recovery);
    start_result_ = fail(spawned.error());
    return fail(spawned.error());
  }
  return ok();
}

// The background fiber: START_DEV or END_USER_RECOVERY, while the tags serve.
void UblkServer::finish_start(bool recovery) {
  auto started =
      recovery ? control(kernel_.end_user_recovery(*dev_id_, options_.pid), "END_USER_RECOVERY")
               : control(kernel_.start_dev(*dev_id_, options_.pid), "START_DEV");
  if (started && recovery) delete_at_close_ = true;  // served by us from now on
  if (closed_ || scheduler_.is_shut_down()) {
    // close() runs (it waits for this fiber) and tears down; or the node is dying and
    // nothing may wait any more.
    start_result_ = started ? fail(Errc::cancelled, "ublk server closed while starting") : started;
  } else if (!started) {
    log_error(log_, "[{}] ublk device /dev/ublkb{} cannot start: {}.", options_.name, *dev_id_,
              started.error().message());
    state_ = UblkState::failed;
    abandon_start(delete_at_close_);
    start_result_ = started;
  } else {
    state_ = UblkState::live;
    log_info(log_, "[{}] ublk device /dev/ublkb{} {}: {} queues of {} tags, {} bytes.",
             options_.name, *dev_id_, recovery ? "recovered" : "started", info_.nr_hw_queues,
             info_.queue_depth, options_.size);
    start_result_ = ok();
  }
  start_changed_.wake_all();
}

Result<void> UblkServer::wait_started() {
  HAST_ASSERT(state_ != UblkState::created);
  while (!start_result_) {
    auto reason = start_changed_.wait(std::nullopt);
    if (reason != fiber::WakeReason::woken) return fiber::wake_result(reason, "ublk start");
  }
  return *start_result_;
}

// ADD_DEV then SET_PARAMS: a new device, not started yet.
Result<void> UblkServer::add_device() {
  ublksrv_ctrl_dev_info info{};
  info.nr_hw_queues = options_.queues;
  info.queue_depth = options_.queue_depth;
  info.max_io_buf_bytes = options_.io_bytes_max;
  info.dev_id = UINT32_MAX;  // the kernel chooses
  info.ublksrv_pid = options_.pid;
  info.flags = flag_cmd_ioctl_encode;
  if (options_.user_recovery) info.flags |= flag_user_recovery;
  info.ublksrv_flags = options_.owner_stamp;
  HAST_TRY(control(kernel_.add_dev(info), "ADD_DEV"));
  dev_id_ = info.dev_id;
  info_ = info;
  delete_at_close_ = true;
  if (options_.user_recovery && (info.flags & flag_user_recovery) == 0) {
    log_warning(log_, "[{}] ublk: the kernel has no user recovery: the device dies with hastd.",
                options_.name);
  }
  if (info.max_io_buf_bytes < options_.sector_size || info.queue_depth == 0 ||
      info.nr_hw_queues == 0) {
    return fail(Errc::io, fmt::format("ADD_DEV returned {} queues of {} tags, {}-byte buffers",
                                      info.nr_hw_queues, info.queue_depth, info.max_io_buf_bytes));
  }
  ublk_params p = params();
  return control(kernel_.set_params(*dev_id_, p), "SET_PARAMS");
}

// GET_DEV_INFO then START_USER_RECOVERY: a quiesced device with its old parameters.
Result<void> UblkServer::attach_recovery() {
  std::uint32_t id = *options_.recover_dev_id;
  ublksrv_ctrl_dev_info info{};
  HAST_TRY(control(kernel_.get_dev_info(id, info), "GET_DEV_INFO"));
  dev_id_ = id;
  info_ = info;
  if ((info.flags & flag_user_recovery) == 0) {
    return fail(Errc::unsupported,
                fmt::format("ublk device {} was added without user recovery", id));
  }
  if (info.state != state_quiesced && info.state != state_fail_io) {
    return fail(Errc::busy, fmt::format("ublk device {} is not waiting for recovery (state {})", id,
                                        info.state));
  }
  if (info.max_io_buf_bytes < options_.sector_size || info.queue_depth == 0 ||
      info.nr_hw_queues == 0) {
    return fail(Errc::io, fmt::format("ublk device {}: {} queues of {} tags", id, info.nr_hw_queues,
                                      info.queue_depth));
  }
  return control(kernel_.start_user_recovery(id), "START_USER_RECOVERY");
}

// Opens the queues and starts one fiber per tag; returns once every tag sent FETCH_REQ,
// which START_DEV and END_USER_RECOVERY wait for.
Result<void> UblkServer::serve_queues() {
  HAST_TRY(control(kernel_.open_queues(info_), "opening the queues"));
  for (std::uint16_t q = 0; q < info_.nr_hw_queues; q++) {
    for (std::uint16_t t = 0; t < info_.queue_depth; t++) {
      auto tag = std::make_unique<Tag>();
      tag->queue = q;
      tag->tag = t;
      tag->buffer = std::make_shared<std::vector<std::byte>>(info_.max_io_buf_bytes);
      tags_.push_back(std::move(tag));
    }
  }
  for (auto& tag : tags_) {
    Tag* raw = tag.get();
    HAST_TRY(tag_fibers_.spawn("ublk-tag", [this, raw] { serve_tag(*raw); }));
  }
  while (tags_armed_ + tags_ended_ < tags_.size()) {
    auto reason = tags_changed_.wait(std::nullopt);
    if (reason != fiber::WakeReason::woken) return fiber::wake_result(reason, "ublk queues");
  }
  if (tags_ended_ > 0) return fail(Errc::io, "a ublk tag failed its first FETCH_REQ");
  return ok();
}

Result<void> UblkServer::control(int result, std::string_view command) {
  if (result >= 0) return ok();
  return fail(
      errc_of_errno(-result),
      fmt::format("ublk {} of device {}: {}", command,
                  dev_id_ ? static_cast<std::int64_t>(*dev_id_) : -1, std::strerror(-result)));
}

ublk_params UblkServer::params() const {
  ublk_params p{};
  p.len = sizeof(p);
  p.types = UBLK_PARAM_TYPE_BASIC | UBLK_PARAM_TYPE_DISCARD;
  auto shift = static_cast<std::uint8_t>(std::countr_zero(options_.sector_size));
  // A volatile cache and FUA: the kernel then sends FLUSH and FUA writes through to us.
  p.basic.attrs = UBLK_ATTR_VOLATILE_CACHE | UBLK_ATTR_FUA;
  p.basic.logical_bs_shift = shift;
  p.basic.physical_bs_shift = shift;
  p.basic.io_min_shift = shift;
  p.basic.io_opt_shift = shift;
  p.basic.max_sectors = info_.max_io_buf_bytes >> sector_shift;
  p.basic.dev_sectors = options_.size >> sector_shift;
  p.discard.discard_granularity = options_.sector_size;
  p.discard.max_discard_sectors = discard_sectors_max;
  p.discard.max_write_zeroes_sectors = discard_sectors_max;
  p.discard.max_discard_segments = 1;
  return p;
}

// Start-up failed after the tags started fetching: STOP_DEV ends their fetches.
void UblkServer::abandon_start(bool delete_it) {
  stop_taking();
  ignore_error(control(kernel_.stop_dev(*dev_id_), "STOP_DEV"), "start() reports the first error");
  tag_fibers_.join_all();
  kernel_.close_queues();
  if (delete_it) delete_device();
  state_ = UblkState::closed;
}

void UblkServer::delete_device() {
  auto deleted = control(kernel_.del_dev(*dev_id_), "DEL_DEV");
  deleted_ = deleted.has_value();
  if (!deleted) log_warning(log_, "[{}] {}.", options_.name, deleted.error().message());
}

// ---- One tag ----

void UblkServer::serve_tag(Tag& tag) {
  tags_armed_++;
  tags_changed_.wake_all();
  int fetched = kernel_.fetch(tag.queue, tag.tag, *tag.buffer);
  while (fetched == io_res_ok) {
    stats_.requests++;
    std::int32_t result = -EIO;
    if (closed_) {
      stats_.failed_at_close++;
    } else {
      result = serve_request(tag);
    }
    fetched = kernel_.commit_and_fetch(tag.queue, tag.tag, result, *tag.buffer);
  }
  if (fetched != io_res_abort && !closed_) {
    log_error(log_, "[{}] ublk queue {} tag {}: fetch failed: {}.", options_.name, tag.queue,
              tag.tag, std::strerror(-fetched));
  }
  tags_armed_--;
  tags_ended_++;
  tags_changed_.wake_all();
}

// Serves the request in the tag's descriptor; returns what to commit.
std::int32_t UblkServer::serve_request(Tag& tag) {
  auto io = std::make_shared<Io>(scheduler_);
  io->buffer = tag.buffer;
  std::int32_t checked = check(kernel_.descriptor(tag.queue, tag.tag), tag, *io);
  if (checked < 0) {
    stats_.rejected++;
    return checked;
  }
  count(*io);
  tag.current = io;
  submit_parts(io);
  wait_parts(*io);
  if (io->op == BlockOp::discard && io->fua == Fua::yes && !io->error && !io->aborted) {
    // The core's discard carries no FUA: a flush after it makes it durable.
    BlockRequest flush;
    flush.op = BlockOp::flush;
    if (submit_part(io, flush)) wait_parts(*io);
  }
  tag.current.reset();
  return result_of(tag, *io);
}

// Decodes and validates a descriptor into `io`: 0, or the -errno to answer at once.
std::int32_t UblkServer::check(const ublksrv_io_desc& desc, const Tag& tag, Io& io) {
  std::uint32_t op = desc.op_flags & op_mask;
  switch (op) {
    case op_read:
      io.op = BlockOp::read;
      break;
    case op_write:
      io.op = BlockOp::write;
      break;
    case op_flush:
      io.op = BlockOp::flush;
      return 0;
    case op_discard:
      io.op = BlockOp::discard;
      break;
    case op_write_zeroes:
      io.op = BlockOp::write_zeroes;
      break;
    default:
      return -EOPNOTSUPP;
  }
  if ((desc.op_flags & io_flag_fua) != 0) io.fua = Fua::yes;
  io.offset = desc.start_sector << sector_shift;
  io.length = static_cast<std::uint64_t>(desc.nr_sectors) << sector_shift;
  bool has_data = io.op == BlockOp::read || io.op == BlockOp::write;
  if (io.length == 0 || io.offset % options_.sector_size != 0 ||
      io.length % options_.sector_size != 0) {
    return -EINVAL;
  }
  if (desc.start_sector > (options_.size >> sector_shift) ||
      io.length > options_.size - io.offset) {
    return -EINVAL;
  }
  if (has_data && io.length > tag.buffer->size()) return -EINVAL;
  return 0;
}

void UblkServer::count(const Io& io) {
  switch (io.op) {
    case BlockOp::read:
      stats_.reads++;
      break;
    case BlockOp::write:
      stats_.writes++;
      if (io.fua == Fua::yes) stats_.fua_writes++;
      break;
    case BlockOp::flush:
      stats_.flushes++;
      break;
    case BlockOp::discard:
      stats_.discards++;
      break;
    case BlockOp::write_zeroes:
      stats_.zeroes++;
      break;
  }
}

// Cuts the request into parts and queues them; stops at the first that cannot be queued.
void UblkServer::submit_parts(const std::shared_ptr<Io>& io) {
  BlockRequest part;
  part.op = io->op;
  if (io->op == BlockOp::write || io->op == BlockOp::write_zeroes) part.fua = io->fua;
  if (io->op == BlockOp::flush) {
    submit_part(io, part);
    return;
  }
  bool has_data = io->op == BlockOp::read || io->op == BlockOp::write;
  std::uint64_t part_max =
      io->op == BlockOp::discard ? options_.discard_part_bytes_max : options_.part_bytes_max;
  for (std::uint64_t done = 0; done < io->length;) {
    std::uint64_t size = std::min<std::uint64_t>(part_max, io->length - done);
    part.offset = io->offset + done;
    part.length = size;
    if (has_data) part.data = std::span(*io->buffer).subspan(done, size);
    if (!submit_part(io, part)) return;
    done += size;
  }
}

bool UblkServer::submit_part(const std::shared_ptr<Io>& io, BlockRequest part) {
  if (io->aborted) return false;
  HAST_ASSERT(part.op == BlockOp::flush || part.length > 0);
  part.id = next_part_id_++;
  parts_.emplace(part.id, io);
  io->parts_pending++;
  stats_.parts++;
  // Suspends while the queue is full: the core sets the pace.
  auto pushed = queue_.push(part);
  if (pushed) return true;
  parts_.erase(part.id);
  io->parts_pending--;
  if (!io->error) io->error = Error(Errc::cancelled, "ublk server closed");
  return false;
}

void UblkServer::wait_parts(Io& io) {
  while (io.parts_pending > 0 && !io.aborted) {
    // Cancelled only at the node's death: nobody will complete the parts then.
    if (io.changed.wait(std::nullopt) == fiber::WakeReason::cancelled) io.aborted = true;
  }
}

// Success only when every part completed and none failed: never a false success.
std::int32_t UblkServer::result_of(Tag& tag, const Io& io) {
  if (io.aborted) {
    stats_.failed_at_close++;
    // The core still holds parts pointing into the buffer: the next fetch gets another.
    if (io.parts_pending > 0) {
      tag.buffer = std::make_shared<std::vector<std::byte>>(info_.max_io_buf_bytes);
    }
    return -EIO;
  }
  HAST_ASSERT(io.parts_pending == 0);
  if (io.error) {
    stats_.failed++;
    return -errno_for(io.error->code());
  }
  if (io.op == BlockOp::flush) return 0;
  return static_cast<std::int32_t>(io.length);
}

// ---- BlockFrontend ----

Result<BlockRequest> UblkServer::next_request() {
  auto part = queue_.pop();
  if (!part) return fail(Errc::cancelled, "ublk server closed");
  HAST_ASSERT(parts_.count(part->id) == 1);
  return part;
}

void UblkServer::complete(const BlockRequest& part, Result<void> result) {
  auto found = parts_.find(part.id);
  HAST_ASSERT_MSG(found != parts_.end(), "ublk: complete() of request {}, not outstanding",
                  part.id);
  std::shared_ptr<Io> io = std::move(found->second);
  parts_.erase(found);
  HAST_ASSERT(io->parts_pending > 0);
  io->parts_pending--;
  if (!result) {
    stats_.parts_failed++;
    if (!io->error) io->error = result.error();
  }
  io->changed.wake_all();
}

// ---- Closing ----

void UblkServer::close() {
  if (state_ == UblkState::closed || state_ == UblkState::closing) return;
  if (state_ == UblkState::created) {
    closed_ = true;
    queue_.close();
    start_result_ = fail(Errc::cancelled, "ublk server closed before it started");
    state_ = UblkState::closed;
    return;
  }
  if (state_ == UblkState::failed) {
    // The background fiber tears the device down; wait for it.
    if (scheduler_.in_fiber() && !scheduler_.is_shut_down()) control_fiber_.join_all();
    return;
  }
  // Order: nothing new reaches the core, what it never took fails, what it holds is
  // answered without it, and only then does the device stop (STOP_DEV waits for the
  // answers of the requests in flight; the tag fibers send them meanwhile).
  state_ = UblkState::closing;
  log_info(log_, "[{}] ublk server closing ({} block requests outstanding).", options_.name,
           parts_.size());
  stop_taking();
  if (!scheduler_.in_fiber() || scheduler_.is_shut_down()) {
    kernel_.close_queues();
    state_ = UblkState::closed;
    return;
  }
  if (dev_id_) {
    ignore_error(control(kernel_.stop_dev(*dev_id_), "STOP_DEV"), "logged below if it matters");
  }
  // A START_DEV still running ended before the STOP_DEV (the kernel serialises them).
  control_fiber_.join_all();
  tag_fibers_.join_all();
  kernel_.close_queues();
  if (dev_id_ && delete_at_close_) delete_device();
  state_ = UblkState::closed;
}

void UblkServer::test_abandon() {
  HAST_ASSERT(scheduler_.in_fiber());
  if (state_ == UblkState::closed) return;
  state_ = UblkState::closing;
  stop_taking();
  control_fiber_.join_all();
  tag_fibers_.join_all();
  kernel_.close_queues();
  state_ = UblkState::closed;
}

void UblkServer::stop_taking() {
  closed_ = true;
  queue_.close();
  fail_queued_parts();
  abort_requests();
}

void UblkServer::abort_requests() {
  for (auto& tag : tags_) {
    if (!tag->current || tag->current->aborted) continue;
    tag->current->aborted = true;
    tag->current->changed.wake_all();
  }
}

// Parts the core never took: they fail now, so their requests can answer.
void UblkServer::fail_queued_parts() {
  HAST_ASSERT(queue_.closed());
  while (true) {
    auto queued = queue_.try_pop();
    if (!queued) return;
    complete(*queued, fail(Errc::cancelled, "ublk server closed"));
  }
}

}  // namespace hast::real::ublk
