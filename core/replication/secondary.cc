// The secondary's session (see secondary.h).
#include "core/replication/secondary.h"

#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "core/fiber/channel.h"
#include "core/fiber/semaphore.h"
#include "core/fiber/spare_objects.h"
#include "core/fiber/task_group.h"
#include "core/io/byte_buffer.h"
#include "core/proto/frame.h"
#include "core/proto/transform.h"
#include "core/replication/decision.h"
#include "core/replication/range_lock.h"
#include "core/replication/wire.h"

namespace hast::replication {
namespace {

// A sender that has something to send lets the other runnable fibers (and those they wake)
// run first, up to this many yields, so what they queue leaves in the same send.
constexpr int batch_gather_rounds = 4;

// Bounds of the secondary's queues (HAST: 256 requests per worker).
constexpr std::size_t kRequestsInFlightMax = 256;
constexpr std::size_t kReplyQueueMax = 2 * kRequestsInFlightMax;

struct OutReply {
  proto::Reply reply;
  ByteBuffer data{};  // READ data, read from the disk into this aligned buffer and sent from it
};

proto::Reply error_reply(std::uint64_t seq, Errc code) {
  proto::Reply reply;
  reply.seq = seq;
  reply.error = proto::wire_errno_from_errc(code);
  return reply;
}

}  // namespace

struct SecondarySession::Pending {
  proto::Request request;
  // WRITE data: the received payload's own aligned buffer, written to the disk as it is.
  ByteBuffer data{};
  std::uint64_t reservation = 0;
};

struct SecondarySession::State {
  explicit State(fiber::Scheduler& scheduler)
      : replies(scheduler, kReplyQueueMax),
        order(scheduler),
        slots(scheduler, kRequestsInFlightMax),
        group(scheduler) {}
  fiber::Channel<OutReply> replies;
  RangeLocks order;
  fiber::Semaphore slots;
  fiber::TaskGroup group;
  std::optional<Error> failure;

  // The requests in flight (one per slot): an op's fiber gets a plain pointer to its own,
  // so neither the request nor the fiber's body allocates. give_back() lets its data go
  // at once (back to the buffer cache), as when a Pending was destroyed.
  fiber::SpareObjects<Pending> spare_pending{kRequestsInFlightMax};
};

SecondarySession::SecondarySession(ResourceContext& context, LocalComponent& local, Connection& in,
                                   Connection& out, std::uint8_t version,
                                   bool& split_brain_reported)
    : context_(context),
      local_(local),
      in_(in),
      out_(out),
      version_(version),
      split_brain_reported_(split_brain_reported) {
  HAST_ASSERT(version_ >= 1 && version_ <= proto::protocol_version_max);
}

Result<void> SecondarySession::run(const proto::IdentityRequest& identity) {
  HAST_TRY(handshake(identity));
  return serve();
}

Result<std::vector<std::byte>> SecondarySession::map_for(MapToSend choice) {
  switch (choice) {
    case MapToSend::none:
      return std::vector<std::byte>();
    case MapToSend::on_disk:
      return local_.read_map_image();
    case MapToSend::all_ones:
      return std::vector<std::byte>(local_.map().ondisk_size_bytes(), std::byte{0xff});
  }
  HAST_UNREACHABLE();
}

Result<void> SecondarySession::handshake(const proto::IdentityRequest& identity) {
  const meta::Metadata& metadata = local_.metadata();
  if (identity.resuid == 0) return fail(Errc::corruption, "primary sent resuid 0");
  SecondaryView mine{metadata.resuid, {metadata.local_count, metadata.remote_count}};
  PrimaryView theirs{
      identity.resuid, {identity.local_count, identity.remote_count}, identity.virgin};
  SyncDecision decision = decide_sync(mine, theirs);
  if (decision.kind == HandshakeCase::split_brain &&
      context_.mutated(Mutation::ignore_split_brain)) {
    decision = SyncDecision{HandshakeCase::secondary_out_of_date, SyncSource::primary,
                            MapToSend::on_disk};  // the bug: overwrite this node's writes
  }
  if (decision.map == MapToSend::all_ones) {
    // Everything is to be copied here: say so on this disk before adopting the pair's
    // resuid. Otherwise a primary that dies before it saved the map it merges would meet a
    // paired, "out of date" node with a clean map and sync nothing (O3 finding).
    static_cast<void>(local_.map().set_all_dirty());  // persisted right below
    HAST_TRY(local_.persist_map(local_.map().generation()));
  }
  if (decision.adopt_resuid) {
    HAST_TRY(local_.update_metadata([&](meta::Metadata& adopted) {
      adopted.resuid = identity.resuid;
      return true;
    }));
  }
  if (decision.refused()) {
    log_error(context_.io.log,
              "[{}] {} (primary(local={}, remote={}), secondary(local={}, "
              "remote={}))",
              context_.config.name,
              decision.kind == HandshakeCase::split_brain ? "Split-brain detected, exiting."
                                                          : decision.refusal,
              theirs.counters.local, theirs.counters.remote, mine.counters.local,
              mine.counters.remote);
    proto::Refusal refusal{decision.refusal, false};
    ignore_error(proto::send_message(in_, version_, refusal.to_nv(), {},
                                     context_.deadline(context_.timing.timeout)),
                 "the session ends either way");
    if (decision.kind == HandshakeCase::split_brain) {
      if (!split_brain_reported_) context_.report(HookEvent::split_brain);
      split_brain_reported_ = true;
      return fail(Errc::split_brain, decision.refusal);
    }
    return fail(Errc::refused, decision.refusal);
  }
  if (!decision.warning.empty())
    log_warning(context_.io.log, "[{}] {}", context_.config.name, decision.warning);
  auto map = map_for(decision.map);
  if (!map) return fail(map.error());
  // This node is about to be a sync target: persist that it is inconsistent until the
  // primary says the sync completed (defect 8). Only a primary that speaks our extensions
  // can say so; with a FreeBSD primary the flag would never clear.
  bool target = decision.source == SyncSource::primary && identity.extensions.batch_flush;
  if (target && !local_.metadata().inconsistent) {
    HAST_TRY(local_.update_metadata([](meta::Metadata& marked) {
      bool changed = !marked.inconsistent;
      marked.inconsistent = true;
      return changed;
    }));
  }
  proto::AcceptReply reply;
  reply.datasize = static_cast<std::int64_t>(metadata.data_size_bytes);
  reply.extentsize = static_cast<std::int32_t>(metadata.extent_size_bytes);
  reply.local_count = local_.metadata().local_count;
  reply.remote_count = local_.metadata().remote_count;
  reply.virgin = decision.reply_virgin;
  reply.sync_source = decision.source;
  reply.mapsize = static_cast<std::uint32_t>(map->size());
  reply.extensions = our_extensions();
  proto::Nv nv = reply.to_nv();
  auto payload =
      proto::encode_payload_view(nv, *map, context_.config.compression, context_.config.checksum);
  HAST_TRY(proto::send_message(in_, version_, nv, payload.bytes,
                               context_.deadline(context_.timing.timeout)));
  peer_extensions_ = identity.extensions;
  split_brain_reported_ = false;
  log_info(context_.io.log, "[{}] Connected to the primary ({}, sync from {}).",
           context_.config.name, handshake_case_name(decision.kind),
           sync_source_name(decision.source));
  context_.report(HookEvent::connect);
  return ok();
}

Result<void> SecondarySession::serve() {
  State state(context_.io.scheduler);
  state_ = &state;
  auto sender = state.group.spawn("secondary-send", [this] { sender_loop(); });
  HAST_ASSERT(sender.has_value());
  Result<void> ended = ok();
  while (ended)
    ended = receive_one();
  if (state.failure) ended = fail(*state.failure);
  // Stop receiving and replying, but let every operation already accepted reach the disk:
  // a memsync WRITE was acknowledged as received, and this node may be promoted next.
  state.replies.close();
  in_.close();
  out_.close();
  state.group.join_all();
  state_ = nullptr;
  log_warning(context_.io.log, "[{}] Disconnected from the primary: {}", context_.config.name,
              ended.error().message());
  context_.report(HookEvent::disconnect);
  return ended;
}

// Replies queued together leave in one send (proto::SendBatch): once woken, the sender
// lets the other runnable fibers queue theirs first, then takes whatever the queue holds.
// The bytes on the wire are the same as one send per reply.
void SecondarySession::sender_loop() {
  State& state = *state_;
  fiber::Scheduler& scheduler = context_.io.scheduler;
  proto::SendBatch batch;
  // Sent from the replies' own buffers (READ data), which live until the send returned.
  std::vector<OutReply> taken;
  std::vector<proto::EncodedPayload> payloads;
  while (true) {
    auto next = state.replies.pop();
    if (!next) return;
    taken.push_back(std::move(*next));
    scheduler.yield_to_others(batch_gather_rounds);
    while (true) {
      OutReply& reply = taken.back();
      proto::Nv nv = reply.reply.to_nv();
      payloads.push_back(proto::encode_payload_view(nv, reply.data, context_.config.compression,
                                                    context_.config.checksum));
      batch.add(version_, nv, payloads.back().bytes);
      if (!batch.has_room()) break;
      auto more = state.replies.try_pop();
      if (!more) break;
      taken.push_back(std::move(*more));
    }
    auto sent = batch.send(out_, context_.deadline(context_.timing.timeout));
    payloads.clear();
    taken.clear();
    if (!sent) {
      state.failure = sent.error().wrap("Unable to send reply");
      in_.close();  // wakes the receiver
      return;
    }
  }
}

Result<void> SecondarySession::receive_one() {
  State& state = *state_;
  proto::RecvLimits limits;
  auto message = proto::recv_message(in_, limits, context_.deadline(2 * context_.timing.keepalive));
  if (!message) return fail(message.error().wrap("Unable to receive request header"));
  auto request = proto::Request::from_nv(message->nv);
  if (!request) {
    auto seq = message->nv.get_uint64("seq").value_or(0);
    log_error(context_.io.log, "[{}] Invalid request: {}", context_.config.name,
              request.error().message());
    if (seq != 0) HAST_TRY(state.replies.push(OutReply{error_reply(seq, Errc::invalid_argument)}));
    return ok();
  }
  if (request->cmd == proto::RequestCommand::keepalive) {
    if (request->sync_done && local_.metadata().inconsistent) {
      // Every sync write before this message was flushed by the primary: consistent again.
      HAST_TRY(local_.update_metadata([](meta::Metadata& cleared) {
        bool changed = cleared.inconsistent;
        cleared.inconsistent = false;
        return changed;
      }));
      log_info(context_.io.log, "[{}] Synchronization complete: consistent again.",
               context_.config.name);
    }
    return ok();
  }
  auto valid = proto::validate_request(*request, local_.sector_size(), local_.data_size(),
                                       proto::request_size_accept_max);
  if (!valid || message->payload_discarded) {
    stats_.errors++;
    log_error(context_.io.log, "[{}] {}", context_.config.name,
              valid ? "Request payload too large." : valid.error().message());
    return state.replies.push(OutReply{error_reply(request->seq, Errc::invalid_argument)});
  }
  if (!map_cleared_) {
    // The primary merged our map before sending its first request: clear it, once.
    auto cleared = local_.clear_map_on_disk();
    if (!cleared)
      log_warning(context_.io.log, "[{}] Unable to store cleared activemap: {}",
                  context_.config.name, cleared.error().message());
    map_cleared_ = true;
  }
  Pending pending{*request};
  if (request->cmd == proto::RequestCommand::write) {
    auto data = proto::decode_payload(message->nv, std::move(message->payload), request->length);
    if (!data) return fail(data.error().wrap("Unable to receive request data"));
    if (data->size() != request->length) {
      return state.replies.push(OutReply{error_reply(request->seq, Errc::invalid_argument)});
    }
    pending.data = std::move(*data);
    if (request->memsync) {
      proto::Reply received;
      received.seq = request->seq;
      received.received = true;
      HAST_TRY(state.replies.push(OutReply{received}));
    }
  }
  bool barrier = request->cmd == proto::RequestCommand::flush;
  pending.reservation = state.order.reserve(LockKind::regular, barrier ? 0 : request->offset,
                                            barrier ? local_.data_size() : request->length);
  auto permit = state.slots.acquire();
  if (!permit) {
    state.order.cancel_reservation(pending.reservation);
    return fail(permit.error());
  }
  // The move-only request travels behind a pointer (std::function copies its body).
  Pending& held = state.spare_pending.take();
  held = std::move(pending);
  auto spawned = state.group.spawn("secondary-op", [this, op = &held] { execute(*op); });
  if (!spawned) {
    state.spare_pending.give_back(held);
    state.slots.release();
    return fail(spawned.error());
  }
  return ok();
}

void SecondarySession::execute(Pending& pending) {
  State& state = *state_;
  // The request goes back to the pool however the fiber ends; the slot after it.
  fiber::Permit permit(state.slots);
  struct GiveBack {
    State& state;
    Pending& pending;
    ~GiveBack() { state.spare_pending.give_back(pending); }
  } give_back{state, pending};
  auto order = state.order.acquire(pending.reservation);
  if (!order) return;  // cancelled
  const proto::Request& request = pending.request;
  OutReply out;
  out.reply.seq = request.seq;
  Result<void> result = ok();
  // Durable before the final reply unless the primary flushes in batches (defect 9).
  Fua fua = peer_extensions_.batch_flush ? Fua::no : Fua::yes;
  switch (request.cmd) {
    case proto::RequestCommand::read:
      stats_.reads++;
      out.data.reset(request.length);  // not zero-filled: the read fills it
      result = local_.read(request.offset, out.data);
      if (!result) out.data.clear();
      break;
    case proto::RequestCommand::write:
      stats_.writes++;
      result = local_.write(request.offset, pending.data, fua);
      break;
    case proto::RequestCommand::discard:
      stats_.deletes++;
      result = local_.discard(request.offset, request.length);
      break;
    case proto::RequestCommand::flush:
      stats_.flushes++;
      // Every request before the FLUSH is done (its reservation spans the device); the
      // ones after it need not wait for the flush itself: it covers what completed before
      // it, and the primary counts only those as flushed (take_unflushed before the send).
      order->release();
      result = local_.flush();
      break;
    case proto::RequestCommand::keepalive:
      HAST_UNREACHABLE();
  }
  order->release();
  if (!result) {
    if (result.error().code() == Errc::cancelled) return;
    stats_.errors++;
    log_error(context_.io.log, "[{}] Request failed: {}: {}({}, {}).", context_.config.name,
              result.error().message(), proto::request_command_name(request.cmd), request.offset,
              request.length);
    out.reply.error = proto::wire_errno_from_errc(result.error().code());
  }
  ignore_error(state.replies.push(std::move(out)), "the session is ending");
}

}  // namespace hast::replication
