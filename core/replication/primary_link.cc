// The primary's link to the secondary: connect, handshake (§6.3), send and receive
// (§6.4), keepalives and failure (§6.6).
#include <fmt/format.h>

#include "core/proto/frame.h"
#include "core/proto/transform.h"
#include "core/replication/primary_internal.h"
#include "core/replication/wire.h"

namespace hast::replication {
namespace {

// A sender that has something to send lets the other runnable fibers (and those they wake)
// run first, up to this many yields, so what they queue leaves in the same send.
constexpr int batch_gather_rounds = 4;

// Why the link is given up: the oldest request piece awaited got no final reply within
// `timeout` of its send.
Error reply_overdue(const AwaitedReplies& awaited, Instant now, Duration timeout) {
  auto oldest = awaited.oldest();
  HAST_ASSERT(oldest.has_value());
  auto [sent, seq] = *oldest;
  HAST_ASSERT(now >= sent);
  return Error(Errc::timed_out,
               fmt::format("no reply to {} (seq {}) for {:.3f} s (timeout {:g} s; {} "
                           "request(s) awaiting a reply)",
                           proto::request_command_name(awaited.command(seq)), seq,
                           std::chrono::duration<double>(now - sent).count(),
                           std::chrono::duration<double>(timeout).count(), awaited.size()));
}

}  // namespace

// The configuration is read afresh for every attempt: a reload may change the remote
// between two (config_changed).
void Primary::connection_loop() {
  while (true) {
    if (!context_.config.remote) {
      // `remote none`: degraded until a reload names a remote.
      if (!wait_reconnect(std::nullopt)) return;
      continue;
    }
    std::string remote = context_.config.remote->text;
    auto link = std::make_unique<Link>(context_.io.scheduler, ++link_number_);
    auto shaken = handshake(*link);
    if (shaken) {
      link_ = std::move(link);
      run_link(*link_);
    } else if (shaken.error().code() == Errc::cancelled) {
      return;
    } else {
      log_warning(context_.io.log, "[{}] Unable to connect to {}: {}", context_.config.name, remote,
                  shaken.error().message());
    }
    if (!wait_reconnect(context_.deadline(context_.timing.reconnect))) return;
  }
}

// Waits until the deadline, or until a reload names a new remote. False when cancelled.
bool Primary::wait_reconnect(Deadline deadline) {
  auto woken = reconnect_now_.wait(deadline);
  reconnect_now_.reset();
  return woken.has_value() || woken.error().code() == Errc::timed_out;
}

void Primary::drop_link(std::string_view why) {
  config_epoch_++;
  if (link_ != nullptr && link_->up) link_down(*link_, Error(Errc::disconnected, std::string(why)));
}

void Primary::config_changed(bool readdressed) {
  if (readdressed) reconnect_now_.set();
}

// The primary's half of the handshake; on success the link is up. The addresses are read
// once: a reload that changes them meanwhile makes the handshake fail at the end.
Result<void> Primary::handshake(Link& link) {
  const config::ResourceConfig& config = context_.config;
  HAST_ASSERT(config.remote.has_value());
  std::uint64_t epoch = config_epoch_;
  Address remote = config.remote->address;
  std::optional<Address> source;
  if (config.source) source = config.source->address;
  Deadline deadline = context_.deadline(context_.timing.timeout);
  auto out = context_.io.network.connect(remote, source, deadline);
  if (!out) return fail(out.error());
  link.out = std::move(*out);
  proto::HelloRequest hello{config.name, proto::protocol_version_max};
  HAST_TRY(proto::send_message(*link.out, version_, hello.to_nv(), {}, deadline));
  auto answer = proto::recv_message(*link.out, proto::RecvLimits{}, deadline);
  if (!answer) return fail(answer.error());
  if (proto::is_refusal(answer->nv)) {
    auto refusal = proto::Refusal::from_nv(answer->nv);
    if (!refusal) return fail(refusal.error());
    return fail(refusal->wait ? Errc::busy : Errc::refused, refusal->errmsg);
  }
  auto greeting = proto::HelloReply::from_nv(answer->nv);
  if (!greeting) return fail(greeting.error());
  version_ = link.version = greeting->version;
  auto in = context_.io.network.connect(remote, source, deadline);
  if (!in) return fail(in.error());
  link.in = std::move(*in);

  proto::IdentityRequest identity;
  identity.resource = config.name;
  identity.token = greeting->token;
  if (local_.metadata().resuid == 0) {
    // The pair's id is born here and kept even if the rest of the handshake fails.
    HAST_TRY(local_.update_metadata([this](meta::Metadata& updated) {
      if (updated.resuid != 0) return false;
      while (updated.resuid == 0)
        updated.resuid = context_.io.random.next_u64();
      return true;
    }));
    identity.virgin = true;
  }
  identity.resuid = local_.metadata().resuid;
  identity.local_count = generation_.counters().local;
  identity.remote_count = generation_.counters().remote;
  identity.extensions = our_extensions();
  HAST_TRY(proto::send_message(*link.in, version_, identity.to_nv(), {}, deadline));

  proto::RecvLimits limits;
  limits.payload_max = static_cast<std::uint32_t>(local_.map().ondisk_size_bytes() + 64);
  auto accepted = proto::recv_message(*link.out, limits, deadline);
  if (!accepted) return fail(accepted.error());
  if (proto::is_refusal(accepted->nv)) {
    auto refusal = proto::Refusal::from_nv(accepted->nv);
    if (!refusal) return fail(refusal.error());
    if (refusal->errmsg == proto::errmsg_split_brain && !split_brain_reported_) {
      split_brain_reported_ = true;  // once per episode (defect 11)
      context_.report(HookEvent::split_brain);
    }
    return fail(refusal->errmsg == proto::errmsg_split_brain ? Errc::split_brain : Errc::refused,
                refusal->errmsg);
  }
  auto reply = proto::AcceptReply::from_nv(accepted->nv);
  if (!reply) return fail(reply.error());
  if (static_cast<std::uint64_t>(reply->datasize) != local_.data_size()) {
    return fail(Errc::invalid_argument,
                fmt::format("Data size differs between nodes (local={}, remote={}).",
                            local_.data_size(), reply->datasize));
  }
  if (static_cast<std::uint32_t>(reply->extentsize) != local_.metadata().extent_size_bytes) {
    return fail(Errc::invalid_argument,
                fmt::format("Extent size differs between nodes (local={}, remote={}).",
                            local_.metadata().extent_size_bytes, reply->extentsize));
  }
  auto map = proto::decode_payload(accepted->nv, std::move(accepted->payload), limits.payload_max);
  if (!map) return fail(map.error());
  if (reply->virgin) {
    ignore_needs_persist(generation_.on_virgin_secondary());
    HAST_TRY(forget_stale_extents());
  }
  HAST_TRY(persist_counters());
  if (!map->empty()) {
    auto merged = local_.map().merge(*map);
    if (!merged) return fail(merged.error());
  }
  HAST_TRY(local_.persist_map(local_.map().generation()));
  secondary_counters_ = Counters{reply->local_count, reply->remote_count};
  sync_source_ = reply->sync_source;
  if (sync_source_ == SyncSource::secondary && local_.map().sync_pending() &&
      !local_.metadata().inconsistent) {
    // This node is the sync target until the sync completes.
    HAST_TRY(local_.update_metadata([](meta::Metadata& marked) {
      bool changed = !marked.inconsistent;
      marked.inconsistent = true;
      return changed;
    }));
  }
  if (epoch != config_epoch_) {
    return fail(Errc::disconnected, "the remote address changed during the handshake");
  }
  link.peer = reply->extensions;
  if (link.version < 2 && config.replication == config::ReplicationMode::memsync) {
    log_warning(context_.io.log,
                "[{}] The remote node uses protocol version 1: memsync is "
                "replaced by fullsync.",
                config.name);
  }
  link.up = true;
  link.last_send = context_.io.clock.now();
  split_brain_reported_ = false;
  stats_.connects++;
  log_info(context_.io.log, "[{}] Connected to {}.", config.name, config.remote->text);
  context_.report(HookEvent::connect);
  return ok();
}

void Primary::run_link(Link& link) {
  HAST_ASSERT(link.up);
  auto sender = link.fibers.spawn("primary-send", [this, &link] { sender_loop(link); });
  auto receiver = link.fibers.spawn("primary-recv", [this, &link] { receiver_loop(link); });
  HAST_ASSERT(sender.has_value() && receiver.has_value());
  link_changed_.set();
  auto joined = link.fibers.join();
  if (!joined) {
    // This fiber was cancelled (the role changes): take the link down; stop() joins.
    link_down(link, joined.error());
    return;
  }
  HAST_ASSERT(!link.up);
}

// A WRITE's payload goes out from the op's own buffer (no copy unless compressed, or unless
// it is batched behind another request: proto::SendBatch): the op is marked `sending`
// meanwhile, so its owner keeps the buffer until the send returned, even when the link goes
// down or the op is given up during the send (wait_remote). Every request piece sent is
// awaited (Link::awaited) until its final reply; keepalives and sync-done messages get no
// reply. Requests queued together leave in one send: once woken, the sender lets the other
// runnable fibers queue theirs first, then takes whatever the queue holds (up to the
// batch's bounds). The bytes on the wire are the same as one send per message.
void Primary::sender_loop(Link& link) {
  proto::SendBatch batch;
  std::vector<SentPiece> pieces;
  std::vector<proto::EncodedPayload> payloads;  // compressed ones own their bytes
  while (link.up) {
    link.sender_idle = true;
    auto seq = link.queue.pop(link.last_send + context_.timing.keepalive);
    link.sender_idle = false;
    if (!seq) {
      if (seq.error().code() != Errc::timed_out) return link_down(link, seq.error());
      batch.add(link.version, proto::Request{}.to_nv(), {});  // KEEPALIVE: nothing for a while
    } else {
      context_.io.scheduler.yield_to_others(batch_gather_rounds);
      if (!link.up) return;
      add_piece(link, *seq, batch, pieces, payloads);
      while (batch.has_room()) {
        auto more = link.queue.try_pop();
        if (!more) break;
        add_piece(link, *more, batch, pieces, payloads);
      }
      if (batch.empty()) continue;  // every request taken was cancelled
    }
    // Their replies may come before this fiber runs again: awaited from now on.
    for (const SentPiece& piece : pieces) {
      if (piece.seq != 0) link.awaited.sending(piece.seq, piece.command);
    }
    auto sent = batch.send(*link.out, context_.deadline(context_.timing.timeout));
    payloads.clear();
    for (const SentPiece& piece : pieces) {
      if (piece.op == nullptr) continue;
      // Still alive: its owner waits for this (a forced unwind at shutdown skips it).
      piece.op->sending = false;
      piece.op->changed.wake_all();
    }
    if (!sent) return link_down(link, sent.error());
    link.last_send = context_.io.clock.now();
    for (const SentPiece& piece : pieces) {
      if (piece.seq != 0) link.awaited.sent(piece.seq, link.last_send);
    }
    pieces.clear();
  }
}

// Adds queued `seq` to the batch: the sync-done message (0), or a piece of a pending request
// (nothing when its request was cancelled). A WRITE piece's op is marked `sending`.
void Primary::add_piece(Link& link, std::uint64_t seq, proto::SendBatch& batch,
                        std::vector<SentPiece>& pieces,
                        std::vector<proto::EncodedPayload>& payloads) {
  if (seq == 0) {
    proto::Request done;
    done.sync_done = true;  // queued by sync_complete(), after every sync write
    batch.add(link.version, done.to_nv(), {});
    return;
  }
  auto found = link.pending.find(seq);
  if (found == link.pending.end()) return;  // its request was cancelled
  RemoteOp& op = *found->second;
  proto::Request piece = op.request;  // one piece of a longer op, or all of it
  piece.seq = seq;
  piece.offset += op.piece_at(seq);
  if (op.request.cmd == proto::RequestCommand::read ||
      op.request.cmd == proto::RequestCommand::write) {
    piece.length = op.piece_length(seq);
  }
  proto::Nv nv = piece.to_nv();
  SentPiece sent{seq, op.request.cmd, nullptr};
  std::span<const std::byte> bytes;
  if (op.request.cmd == proto::RequestCommand::write) {
    auto data = op.data.subspan(op.piece_at(seq), piece.length);
    payloads.push_back(proto::encode_payload_view(nv, data, context_.config.compression,
                                                  context_.config.checksum));
    bytes = payloads.back().bytes;
    sent.op = &op;
    op.sending = true;
  }
  if (!op.taken) {
    op.taken = true;
    // Its local leg may start now; no one else is woken (their schedule stays as it was).
    if (op.leading) op.changed.wake_all();
  }
  batch.add(link.version, nv, bytes);
  pieces.push_back(sent);
}

// The oldest request piece sent and not finally answered sets the deadline (§6.6):
// `timeout` after its send, however many replies to later requests come (FreeBSD's hastd
// re-arms one receive timeout at every reply, so a secondary withholding one final reply
// while answering the rest is never given up). With none sent yet (the sender is on its
// way), `timeout` from now.
void Primary::receiver_loop(Link& link) {
  while (link.up) {
    if (link.pending.empty() && link.awaited.size() == 0) {
      // Nothing outstanding: the secondary has nothing to say (it never sends keepalives).
      if (link.work.wait(std::nullopt) != fiber::WakeReason::woken) return;
      continue;
    }
    auto oldest = link.awaited.oldest();
    proto::RecvLimits limits;
    Deadline deadline = oldest ? oldest->first + context_.timing.timeout
                               : context_.deadline(context_.timing.timeout);
    if (context_.mutated(Mutation::wait_forever_for_remote)) deadline = std::nullopt;  // mutation
    auto message = proto::recv_message(*link.in, limits, deadline);
    if (!message && message.error().code() == Errc::timed_out) {
      // Named when one was sent by now (the sender may have sent one meanwhile).
      if (link.awaited.oldest()) {
        return link_down(
            link, reply_overdue(link.awaited, context_.io.clock.now(), context_.timing.timeout));
      }
    }
    if (!message) return link_down(link, message.error());
    auto reply = proto::Reply::from_nv(message->nv);
    if (!reply) return link_down(link, reply.error());
    if (!reply->received) link.awaited.replied(reply->seq);
    auto found = link.pending.find(reply->seq);
    if (found == link.pending.end()) continue;  // a cancelled request's reply
    RemoteOp& op = *found->second;
    if (reply->received) {
      if (++op.pieces_received < op.pieces) continue;
      op.received = true;
      op.changed.wake_all();
      continue;
    }
    link.pending_nodes.erase(link.pending, found);
    piece_replied(op, reply->seq, *reply, *message);
  }
}

// The final reply to piece `seq` of `op` (all of it unless the op was split): the op is
// final once every piece's final reply came, failed if any piece failed.
void Primary::piece_replied(RemoteOp& op, std::uint64_t seq, const proto::Reply& reply,
                            proto::Message& message) {
  HAST_ASSERT(op.pieces_left > 0);
  op.pieces_left--;
  auto failed = [&op](Error error) {
    if (!op.piece_failed) op.error = std::move(error);  // the first failure names the op's
    op.piece_failed = true;
  };
  if (reply.error != 0) {
    failed(Error(proto::errc_from_wire_errno(reply.error),
                 fmt::format("remote {} failed", proto::request_command_name(op.request.cmd))));
  } else if (op.request.cmd == proto::RequestCommand::read) {
    auto into = op.read_into.subspan(op.piece_at(seq), op.piece_length(seq));
    auto data = proto::decode_payload(message.nv, std::move(message.payload), into.size());
    if (!data || data->size() != into.size()) {
      failed(data ? Error(Errc::corruption, "short remote read") : data.error());
    } else {
      std::copy(data->begin(), data->end(), into.begin());
    }
  }
  if (op.pieces_left > 0) return;
  op.final = op.piece_failed ? LegState::failed : LegState::ok;
  op.changed.wake_all();
}

void Primary::link_down(Link& link, const Error& why) {
  if (!link.up) return;
  link.up = false;
  link.out->close();
  link.in->close();
  link.queue.close();
  // Every request still waiting for the secondary learns it will not hear back: its
  // remote leg is unavailable and its extents go to sync.
  for (auto& [seq, op] : link.pending) {
    op->final = LegState::unavailable;
    op->error = Error(Errc::disconnected, "disconnected");
    op->changed.wake_all();
  }
  link.pending.clear();
  link.awaited.clear();
  // Writes the secondary acknowledged but no FLUSH covered yet may sit in a cache that
  // is gone by the time we reconnect: resync them (defect 9).
  for (auto [offset, length] : unflushed_) {
    ignore_needs_flush(local_.map().write_complete(offset, length, meta::RemoteAck::no));
  }
  unflushed_.clear();
  unflushed_kept_ = 0;
  link.fibers.cancel();
  link.work.wake_all();
  generation_.on_disconnect();
  stats_.disconnects++;
  link_changed_.set();
  if (why.code() != Errc::cancelled) {
    log_warning(context_.io.log, "[{}] Disconnected from {}: {}", context_.config.name,
                context_.config.remote_text(), why.message());
  }
  context_.report(HookEvent::disconnect);
}

// A READ or WRITE longer than the peer accepts (a FreeBSD peer: 128 KiB) is split into
// pieces of the peer's size, each its own protocol request (RemoteOp::pieces).
bool Primary::submit(RemoteOp& op, bool may_wait) {
  if (link_ == nullptr || !link_->up) return false;
  Link& link = *link_;
  std::uint64_t limit = proto::request_size_send_max(link.peer);
  bool sized = op.request.cmd == proto::RequestCommand::read ||
               op.request.cmd == proto::RequestCommand::write;
  op.piece_bytes = sized ? std::min(limit, op.request.length) : op.request.length;
  op.pieces = sized ? static_cast<std::uint32_t>((op.request.length + limit - 1) / limit) : 1;
  HAST_ASSERT(op.pieces >= 1);
  op.request.seq = link.next_seq;
  link.next_seq += op.pieces;
  op.link = link.number;
  op.received = false;
  op.taken = false;
  op.pieces_received = 0;
  op.pieces_left = op.pieces;
  op.piece_failed = false;
  op.final = LegState::pending;
  for (std::uint32_t i = 0; i < op.pieces; i++)
    link.pending_nodes.insert(link.pending, op.request.seq + i, &op);
  bool queued = true;
  for (std::uint32_t i = 0; i < op.pieces && queued && link.up; i++) {
    // async: never wait for a slow peer (defect 10). A full queue drops the send; the
    // caller counts it in the replication backlog otherwise (see the table in write_ack.h).
    std::uint64_t seq = op.request.seq + i;
    queued = may_wait ? link.queue.push(seq).has_value() : link.queue.try_push(seq);
  }
  if (!queued || !link.up) {
    forget(op);  // pieces already queued are skipped by the sender
    // A piece may be on its way out while a later one waited for room.
    while (op.sending) {
      if (op.changed.wait(std::nullopt, false) != fiber::WakeReason::woken) break;  // shutdown
    }
    return false;
  }
  link.work.wake_all();
  return true;
}

void Primary::forget(RemoteOp& op) {
  if (op.link == 0 || link_ == nullptr || link_->number != op.link) return;
  for (std::uint32_t i = 0; i < op.pieces; i++)
    link_->pending_nodes.erase(link_->pending, op.request.seq + i);
  op.link = 0;
}

LegState Primary::wait_remote(RemoteOp& op, bool until_final) {
  while (op.final == LegState::pending && (until_final || !op.received)) {
    if (op.changed.wait(std::nullopt) != fiber::WakeReason::woken) {
      forget(op);
      op.final = LegState::unavailable;
      op.error = Error(Errc::cancelled, "request cancelled");
    }
  }
  // Final (the link gave it up, or it was cancelled) while the sender still reads its
  // data: the caller may free that only once the send returned. Not interruptible: the
  // send is bounded by its deadline and ends at once when the link goes down; only a
  // shutdown ends this wait early.
  while (op.final != LegState::pending && op.sending) {
    if (op.changed.wait(std::nullopt, false) != fiber::WakeReason::woken) break;  // shutdown
  }
  return op.final;
}

// The secondary is new (an empty disk, created again): the good copies of the extents stale
// here were on the disk it replaced and are gone. An empty disk is never a sync source
// (row 17): this node's copies, possibly older, become the data, and the loss is logged.
Result<void> Primary::forget_stale_extents() {
  const auto& stale = local_.metadata().stale_extents;
  if (stale.empty()) return ok();
  std::string list;
  for (meta::ExtentIndex extent : stale)
    list += fmt::format("{}{}", list.empty() ? "" : ", ", extent.value);
  log_error(context_.io.log,
            "[{}] The secondary's disk is new: extents {} had their good copy only there (a "
            "local write failed); they keep this node's older data.",
            context_.config.name, list);
  return local_.update_metadata([](meta::Metadata& updated) {
    updated.stale_extents.clear();
    return true;
  });
}

}  // namespace hast::replication
