// The NBD server (see server.h): accepting, the handshake, transmission, closing.
//
// Method: a client's reader fiber owns its stream's read side and sends only what it
// answers itself (handshake replies, rejections); every other reply comes from the fiber
// of its request, under the session's send lock. A Request is shared by its fiber and by
// its parts in parts_ (the core's view), so the buffer a part points into outlives the
// client, the reply and even the session, until complete() drops the last part.
//
// Invariants: every part in parts_ is in queue_ or taken by the core; a request's
// parts_pending counts exactly its entries in parts_; a session's slots_used counts its
// requests between reserve() and the end of their fiber, in_flight the spawned ones.
#include "core/nbd/server.h"

#include <algorithm>
#include <optional>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "core/fiber/semaphore.h"
#include "core/fiber/wait_queue.h"

namespace hast::nbd {
namespace {

// A sender that has something to send lets the other runnable fibers (and those they wake)
// run first, up to this many yields, so what they queue leaves in the same send.
constexpr int batch_gather_rounds = 4;

using namespace std::chrono_literals;

// A client may send this many options before it must choose an export.
constexpr std::size_t options_count_max = 128;
// Largest option data read; INFO/GO with the longest name and every info type fits.
constexpr std::uint32_t option_bytes_max = 64 * 1024;
// A rejected WRITE's payload is read and dropped through a buffer of this size.
constexpr std::size_t discard_chunk_bytes = 64 * 1024;
// Pause after an accept error other than the listener's close (out of descriptors).
constexpr Duration accept_retry = 100ms;

bool is_power_of_two(std::uint64_t value) {
  return value != 0 && (value & (value - 1)) == 0;
}

Result<void> with_context(Result<void> result, std::string_view what) {
  if (result) return result;
  return fail(result.error().wrap(what));
}

void append(std::vector<std::byte>& out, const std::vector<std::byte>& more) {
  out.insert(out.end(), more.begin(), more.end());
}

std::span<const std::byte> text_bytes(std::string_view text) {
  return std::as_bytes(std::span(text.data(), std::min(text.size(), name_size_max)));
}

// Reads and drops `size` bytes so the stream keeps its framing.
Result<void> discard_payload(Connection& connection, std::uint64_t size, Deadline deadline) {
  std::vector<std::byte> scratch(std::min<std::uint64_t>(size, discard_chunk_bytes));
  for (std::uint64_t left = size; left > 0;) {
    std::size_t chunk = std::min<std::uint64_t>(left, scratch.size());
    HAST_TRY(connection.recv_exact(std::span(scratch).first(chunk), deadline));
    left -= chunk;
  }
  return ok();
}

// Errors that mean the client broke the protocol (as opposed to leaving or being closed).
bool protocol_error(Errc code) {
  return code == Errc::corruption || code == Errc::invalid_argument || code == Errc::not_found;
}

BlockOp block_op_of(Command command) {
  switch (command) {
    case Command::read:
      return BlockOp::read;
    case Command::write:
      return BlockOp::write;
    case Command::flush:
      return BlockOp::flush;
    case Command::trim:
      return BlockOp::discard;
    case Command::write_zeroes:
      return BlockOp::write_zeroes;
    default:
      break;
  }
  HAST_UNREACHABLE();
}

}  // namespace

// One transmission request from its arrival to its reply. Shared by its fiber and by the
// parts the core holds: it lives until both are done with it.
struct NbdServer::Request : std::enable_shared_from_this<Request> {
  Request(fiber::Scheduler& scheduler, Session& session_ref)
      : session(&session_ref), changed(scheduler) {}

  Session* session;  // outlives the request's fiber (finish() joins them)
  RequestHeader header;
  std::uint64_t sequence = 0;  // in its session's in_flight
  // READ: the data to reply with; WRITE: the payload. Aligned (parts at multiples of
  // part_bytes_max go to an O_DIRECT disk as they are) and never zero-filled: a WRITE's
  // bytes come from the client, a READ's from the core before the reply reads them. A
  // WRITE in one part offers it to the core (BlockRequest::owned), which may leave it
  // empty: nothing reads a WRITE's buffer after its part was submitted, and it is never
  // reused (every request allocates its own).
  ByteBuffer buffer;
  std::uint64_t reserved_bytes = 0;  // of the session's buffer budget
  std::size_t parts_pending = 0;     // queued or taken by the core, not completed
  std::optional<Error> error;        // of the first part that failed
  // Set when the request must be answered now, with this error, without waiting for its
  // parts (the server closes, the client is gone).
  std::optional<NbdError> abort_error;
  fiber::WaitQueue changed;  // a part completed or the request was aborted
};

// One client connection.
struct NbdServer::Session {
  Session(fiber::Scheduler& scheduler, std::uint64_t id_value, std::shared_ptr<Connection> conn)
      : id(id_value),
        connection(std::move(conn)),
        peer(fmt::format("{} (#{})", connection->peer_address().to_string(), id_value)),
        requests(scheduler),
        slot_freed(scheduler),
        send_lock(scheduler, 1) {}

  std::uint64_t id;
  std::shared_ptr<Connection> connection;
  std::string peer;
  bool no_zeroes = false;
  fiber::TaskGroup requests;  // one fiber per request in flight
  std::map<std::uint64_t, std::shared_ptr<Request>> in_flight;
  std::uint64_t next_sequence = 0;
  std::size_t slots_used = 0;
  std::uint64_t bytes_used = 0;
  fiber::WaitQueue slot_freed;
  fiber::Semaphore send_lock;  // a reply goes out whole
  // Simple replies of request fibers not sent yet (queue_reply), and whether a fiber is on
  // its way to send them. Whoever sends next under the send lock takes them along.
  std::vector<std::byte> outbox;
  bool outbox_sender = false;
  std::vector<std::byte> sending;  // the replies of the send under way (send_locked)
};

NbdServer::NbdServer(fiber::Scheduler& scheduler, Network& network, Log& log,
                     NbdServerOptions options)
    : scheduler_(scheduler),
      network_(network),
      log_(log),
      options_(std::move(options)),
      queue_(scheduler, options_.queue_capacity),
      fibers_(scheduler) {
  const NbdServerOptions& o = options_;
  HAST_ASSERT(is_power_of_two(o.block_size_min) && o.block_size_min <= 65536);
  HAST_ASSERT(is_power_of_two(o.block_size_preferred));
  HAST_ASSERT(o.block_size_preferred >= o.block_size_min);
  HAST_ASSERT_MSG(o.export_size % o.block_size_min == 0, "export size {} not a multiple of {}",
                  o.export_size, o.block_size_min);
  HAST_ASSERT(o.part_bytes_max >= o.block_size_preferred);
  HAST_ASSERT(o.part_bytes_max % o.block_size_min == 0);
  HAST_ASSERT(o.trim_part_bytes_max >= o.block_size_min);
  HAST_ASSERT(o.trim_part_bytes_max % o.block_size_min == 0);
  HAST_ASSERT(o.payload_bytes_max >= o.part_bytes_max);
  HAST_ASSERT(o.export_name.size() <= name_size_max);
  HAST_ASSERT(o.clients_max > 0 && o.requests_per_client_max > 0);
}

NbdServer::~NbdServer() {
  HAST_ASSERT_MSG(parts_.empty() || scheduler_.is_shut_down(),
                  "NBD server destroyed while the core holds {} of its requests", parts_.size());
  HAST_ASSERT_MSG(fibers_.size() == 0 || scheduler_.is_shut_down(),
                  "NBD server destroyed while serving: close() it from a fiber first");
}

Result<void> NbdServer::start() {
  HAST_ASSERT(!started_);
  HAST_ASSERT(!closed_);
  auto listener = network_.listen(options_.address);
  if (!listener) {
    return fail(listener.error().wrap("NBD listen on " + options_.address.to_string()));
  }
  listener_ = std::move(*listener);
  started_ = true;
  auto spawned = fibers_.spawn("nbd-accept", [this] { accept_loop(); });
  if (!spawned) {
    listener_->close();
    return fail(spawned.error());
  }
  log_info(log_, "[{}] NBD server listening on {}.", options_.export_name,
           listener_->address().to_string());
  if (options_.address.is_tcp()) {
    log_warning(log_, "[{}] NBD over TCP: anyone who can reach {} can read and write the device.",
                options_.export_name, listener_->address().to_string());
  }
  return ok();
}

Address NbdServer::address() const {
  HAST_ASSERT(listener_ != nullptr);
  return listener_->address();
}

// ---- Accepting and serving clients ----

void NbdServer::accept_loop() {
  while (!closed_) {
    auto accepted = listener_->accept(std::nullopt);
    if (accepted) {
      admit(std::shared_ptr<Connection>(std::move(*accepted)));
      continue;
    }
    if (closed_ || accepted.error().code() == Errc::cancelled) return;
    log_error(log_, "[{}] NBD accept on {} failed: {}", options_.export_name,
              listener_->address().to_string(), accepted.error().message());
    if (!scheduler_.sleep_for(accept_retry)) return;
  }
}

void NbdServer::admit(std::shared_ptr<Connection> connection) {
  if (closed_ || sessions_.size() >= options_.clients_max) {
    stats_.clients_refused++;
    log_warning(log_, "[{}] NBD client {} refused: {} clients connected (at most {}).",
                options_.export_name, connection->peer_address().to_string(), sessions_.size(),
                options_.clients_max);
    connection->close();
    return;
  }
  auto session = std::make_shared<Session>(scheduler_, next_session_id_++, std::move(connection));
  auto spawned = fibers_.spawn("nbd-client", [this, session] { serve(session); });
  if (!spawned) {
    session->connection->close();
    return;
  }
  sessions_.emplace(session->id, session);
  stats_.clients_accepted++;
  HAST_ASSERT(sessions_.size() <= options_.clients_max);
}

// The reader fiber of one client: handshake, transmission, then the end of the session.
void NbdServer::serve(const std::shared_ptr<Session>& session) {
  log_info(log_, "[{}] NBD client {} connected.", options_.export_name, session->peer);
  Result<void> ended = handshake(*session);
  if (ended) ended = transmission(*session);
  finish(*session, ended);
  sessions_.erase(session->id);
}

// Ends a session: its request fibers are done and its connection closed afterwards.
void NbdServer::finish(Session& session, const Result<void>& ended) {
  if (ended || closed_) {
    // DISC: the client waits for the replies of what it sent before it (proto.md). A
    // closing server aborted every request: their ESHUTDOWN replies go out first.
    session.requests.join_all();
  } else {
    // Nobody is left to answer: the requests end as soon as they may.
    session.connection->close();
    abort_requests(session, NbdError::io);
    session.requests.join_all();
  }
  session.connection->close();
  HAST_ASSERT(session.in_flight.empty());
  HAST_ASSERT(session.slots_used == 0);
  const std::string& name = options_.export_name;
  if (ended) {
    log_info(log_, "[{}] NBD client {} disconnected.", name, session.peer);
  } else if (closed_) {
    log_info(log_, "[{}] NBD client {} disconnected: the server closed.", name, session.peer);
  } else if (protocol_error(ended.error().code())) {
    stats_.protocol_errors++;
    log_warning(log_, "[{}] NBD client {} closed: {}.", name, session.peer,
                ended.error().message());
  } else {
    log_info(log_, "[{}] NBD client {} disconnected: {}.", name, session.peer,
             ended.error().message());
  }
}

// ---- Handshake ----

// Fixed newstyle: greeting, client flags, options until one selects the export. Any
// failure ends the client; the caller logs it.
Result<void> NbdServer::handshake(Session& session) {
  Deadline deadline = deadline_after(scheduler_.clock(), options_.handshake_timeout);
  constexpr std::uint16_t offered = handshake_fixed_newstyle | handshake_no_zeroes;
  auto greeting = encode_greeting(offered);
  HAST_TRY(with_context(session.connection->send(greeting, deadline), "sending the greeting"));
  std::array<std::byte, client_flags_size> raw{};
  HAST_TRY(with_context(session.connection->recv_exact(raw, deadline), "client flags"));
  auto flags = decode_client_flags(raw, offered);
  if (!flags) return fail(flags.error());
  session.no_zeroes = (*flags & client_no_zeroes) != 0;
  for (std::size_t count = 0; count < options_count_max; count++) {
    auto step = negotiate_option(session, deadline);
    if (!step) return fail(step.error());
    if (*step == Step::transmission) return ok();
    if (*step == Step::abort) return fail(Errc::disconnected, "the client aborted the handshake");
  }
  return fail(Errc::invalid_argument, fmt::format("more than {} options", options_count_max));
}

Result<NbdServer::Step> NbdServer::negotiate_option(Session& session, Deadline deadline) {
  std::array<std::byte, option_header_size> raw{};
  HAST_TRY(with_context(session.connection->recv_exact(raw, deadline), "option header"));
  auto header = decode_option_header(raw);
  if (!header) return fail(header.error());
  if (header->length > option_bytes_max) {
    return fail(
        Errc::invalid_argument,
        fmt::format("option {} with {} bytes of data, over the limit of {}",
                    static_cast<std::uint32_t>(header->option), header->length, option_bytes_max));
  }
  std::vector<std::byte> data(header->length);
  if (!data.empty()) {
    HAST_TRY(with_context(session.connection->recv_exact(data, deadline), "option data"));
  }
  switch (header->option) {
    case Option::export_name:
      return export_name(session, data, deadline);
    case Option::list:
      return list(session, data, deadline);
    case Option::info:
    case Option::go:
      return info_or_go(session, header->option, data, deadline);
    case Option::abort:
      ignore_error(send_option_reply(session, Option::abort, OptionReply::ack, {}, deadline),
                   "the client is leaving; it need not wait for the ACK");
      return Step::abort;
    default:
      break;
  }
  // STRUCTURED_REPLY, STARTTLS, meta contexts and anything newer: simple replies only.
  log_debug(log_, "[{}] NBD client {}: option {} ({}) unsupported.", options_.export_name,
            session.peer, static_cast<std::uint32_t>(header->option), option_name(header->option));
  HAST_TRY(send_option_reply(session, header->option, OptionReply::err_unsup, "unsupported option",
                             deadline));
  return Step::next_option;
}

// EXPORT_NAME cannot report an error: an unknown name closes the connection (proto.md).
Result<NbdServer::Step> NbdServer::export_name(Session& session, std::span<const std::byte> data,
                                               Deadline deadline) {
  auto name = decode_export_name(data);
  if (!name) return fail(name.error().wrap("EXPORT_NAME"));
  if (!known_export(*name)) {
    return fail(Errc::not_found, fmt::format("EXPORT_NAME '{}': no such export", *name));
  }
  auto reply =
      encode_export_name_reply(options_.export_size, transmission_flags(), !session.no_zeroes);
  HAST_TRY(with_context(session.connection->send(reply, deadline), "EXPORT_NAME reply"));
  return Step::transmission;
}

Result<NbdServer::Step> NbdServer::list(Session& session, std::span<const std::byte> data,
                                        Deadline deadline) {
  if (!data.empty()) {
    HAST_TRY(send_option_reply(session, Option::list, OptionReply::err_invalid,
                               "LIST takes no data", deadline));
    return Step::next_option;
  }
  auto out = encode_option_reply(Option::list, OptionReply::server,
                                 encode_server_entry(options_.export_name));
  append(out, encode_option_reply(Option::list, OptionReply::ack));
  HAST_TRY(with_context(session.connection->send(out, deadline), "LIST reply"));
  return Step::next_option;
}

// INFO and GO: the export's size and flags and its block sizes (always: the server
// enforces its minimum), the canonical name when asked, then ACK.
Result<NbdServer::Step> NbdServer::info_or_go(Session& session, Option option,
                                              std::span<const std::byte> data, Deadline deadline) {
  auto request = decode_export_request(data);
  if (!request) {
    log_warning(log_, "[{}] NBD client {}: {} rejected: {}.", options_.export_name, session.peer,
                option_name(option), request.error().message());
    HAST_TRY(send_option_reply(session, option, OptionReply::err_invalid, request.error().context(),
                               deadline));
    return Step::next_option;
  }
  if (!known_export(request->name)) {
    HAST_TRY(send_option_reply(session, option, OptionReply::err_unknown,
                               fmt::format("no export named '{}'", request->name), deadline));
    return Step::next_option;
  }
  auto out = encode_option_reply(option, OptionReply::info,
                                 encode_info_export(options_.export_size, transmission_flags()));
  auto sizes = encode_info_block_size(options_.block_size_min, options_.block_size_preferred,
                                      options_.part_bytes_max);
  append(out, encode_option_reply(option, OptionReply::info, sizes));
  if (std::find(request->infos.begin(), request->infos.end(), InfoType::name) !=
      request->infos.end()) {
    append(out,
           encode_option_reply(option, OptionReply::info, encode_info_name(options_.export_name)));
  }
  append(out, encode_option_reply(option, OptionReply::ack));
  HAST_TRY(with_context(session.connection->send(out, deadline), "INFO reply"));
  return option == Option::go ? Step::transmission : Step::next_option;
}

Result<void> NbdServer::send_option_reply(Session& session, Option option, OptionReply type,
                                          std::string_view message, Deadline deadline) {
  auto bytes = encode_option_reply(option, type, text_bytes(message));
  return with_context(session.connection->send(bytes, deadline), "option reply");
}

bool NbdServer::known_export(std::string_view name) const {
  return name.empty() || name == options_.export_name;
}

std::uint16_t NbdServer::transmission_flags() const {
  return transmission_has_flags | transmission_send_flush | transmission_send_fua |
         transmission_send_trim | transmission_send_write_zeroes | transmission_can_multi_conn;
}

ExportGeometry NbdServer::geometry() const {
  return ExportGeometry{options_.export_size, options_.block_size_min, options_.payload_bytes_max};
}

// ---- Transmission ----

// Reads requests in stream order until DISC (success) or a failure that ends the client.
Result<void> NbdServer::transmission(Session& session) {
  std::array<std::byte, request_header_size> raw{};
  while (true) {
    // No deadline: a client may stay idle for as long as it likes.
    auto received = session.connection->recv_exact(raw, std::nullopt);
    if (!received) return fail(received.error().wrap("waiting for a request"));
    auto header = decode_request_header(raw);
    if (!header) return fail(header.error());
    stats_.requests++;
    if (header->command == Command::disc) return ok();
    HAST_TRY(dispatch(session, *header));
  }
}

// Answers a request that fails validation, or starts its fiber.
Result<void> NbdServer::dispatch(Session& session, const RequestHeader& header) {
  bool is_read = header.command == Command::read;
  bool is_write = header.command == Command::write;
  if (is_write && header.length > options_.payload_bytes_max) {
    // Reading it would pin that much memory; skipping it loses the framing: answer, close.
    auto too_big = fmt::format("WRITE of {} bytes over the payload limit of {}", header.length,
                               options_.payload_bytes_max);
    ignore_error(send_reply(session, SimpleReply{NbdError::inval, header.handle}),
                 "the client is closed next either way");
    return fail(Errc::invalid_argument, too_big);
  }
  auto valid = validate_request(header, geometry());
  if (!valid) return reject(session, header, valid.error());
  // The slot before the payload: a client that floods WRITEs waits here, and TCP holds
  // its bytes back, instead of this process buffering them.
  std::uint64_t bytes = is_read || is_write ? header.length : 0;
  HAST_TRY(reserve(session, bytes));
  auto request = std::make_shared<Request>(scheduler_, session);
  request->header = header;
  request->reserved_bytes = bytes;
  request->buffer.reset(bytes);
  if (is_write && bytes > 0) {
    Deadline deadline = deadline_after(scheduler_.clock(), options_.io_timeout);
    auto received = session.connection->recv_exact(request->buffer, deadline);
    if (!received) {
      release(session, bytes);
      return fail(received.error().wrap(fmt::format("WRITE payload of {} bytes", bytes)));
    }
  }
  // In in_flight before the fiber runs, so a close() from now on aborts it too; the entry
  // keeps the request alive until its fiber ends (run_request's Leave), so the fiber is
  // handed a plain pointer (two pointers fit std::function without an allocation).
  request->sequence = session.next_sequence++;
  request_nodes_.insert(session.in_flight, request->sequence, request);
  Request* started = request.get();
  auto spawned = session.requests.spawn("nbd-request", [this, started] {
    run_request(*started->session, started->shared_from_this());
  });
  if (!spawned) {
    request_nodes_.erase(session.in_flight, request->sequence);
    release(session, bytes);
    return fail(spawned.error());
  }
  return ok();
}

Result<void> NbdServer::reject(Session& session, const RequestHeader& header, const Error& error) {
  stats_.requests_rejected++;
  log_warning(log_, "[{}] NBD client {}: request rejected: {}.", options_.export_name, session.peer,
              error.message());
  if (header.command == Command::write) {
    Deadline deadline = deadline_after(scheduler_.clock(), options_.io_timeout);
    auto discarded = discard_payload(*session.connection, header.length, deadline);
    if (!discarded) return fail(discarded.error().wrap("dropping a rejected WRITE's payload"));
  }
  return send_reply(session, SimpleReply{nbd_error_of(error.code()), header.handle});
}

// Waits until the client may have one more request (of `bytes` buffered) in flight.
Result<void> NbdServer::reserve(Session& session, std::uint64_t bytes) {
  auto full = [&] {
    if (session.slots_used >= options_.requests_per_client_max) return true;
    return session.bytes_used > 0 &&
           session.bytes_used + bytes > options_.buffer_bytes_per_client_max;
  };
  while (full()) {
    auto reason = session.slot_freed.wait(std::nullopt);
    if (reason != fiber::WakeReason::woken) return fiber::wake_result(reason, "request slot");
  }
  session.slots_used++;
  session.bytes_used += bytes;
  HAST_ASSERT(session.slots_used <= options_.requests_per_client_max);
  return ok();
}

void NbdServer::release(Session& session, std::uint64_t bytes) {
  HAST_ASSERT(session.slots_used > 0);
  HAST_ASSERT(session.bytes_used >= bytes);
  session.slots_used--;
  session.bytes_used -= bytes;
  session.slot_freed.wake_all();
}

// ---- One request in flight ----

void NbdServer::run_request(Session& session, const std::shared_ptr<Request>& request) {
  // Leaves the session's books however the fiber ends (a dying node unwinds it).
  struct Leave {
    NbdServer& server;
    Session& session;
    Request& request;
    ~Leave() {
      server.request_nodes_.erase(session.in_flight, request.sequence);
      server.release(session, request.reserved_bytes);
    }
  } leave{*this, session, *request};
  submit_parts(request);
  wait_parts(*request);
  const RequestHeader& header = request->header;
  bool fua = (header.flags & command_flag_fua) != 0;
  if (header.command == Command::trim && fua && !request->error && !request->abort_error) {
    // The core's DELETE carries no FUA: a FLUSH after it makes the trim durable.
    BlockRequest flush;
    flush.op = BlockOp::flush;
    if (submit_part(request, flush)) wait_parts(*request);
  }
  reply(session, *request);
}

// Cuts the request into parts and queues them; stops at the first that cannot be queued.
void NbdServer::submit_parts(const std::shared_ptr<Request>& request) {
  const RequestHeader& header = request->header;
  BlockRequest part;
  part.op = block_op_of(header.command);
  bool fua = (header.flags & command_flag_fua) != 0;
  if (fua && (part.op == BlockOp::write || part.op == BlockOp::write_zeroes)) part.fua = Fua::yes;
  if (part.op == BlockOp::flush) {
    submit_part(request, part);
    return;
  }
  bool has_data = part.op == BlockOp::read || part.op == BlockOp::write;
  std::uint64_t part_max =
      part.op == BlockOp::discard ? options_.trim_part_bytes_max : options_.part_bytes_max;
  for (std::uint64_t done = 0; done < header.length;) {
    std::uint64_t size = std::min<std::uint64_t>(part_max, header.length - done);
    part.offset = header.offset + done;
    part.length = size;
    if (has_data) part.data = request->buffer.span().subspan(done, size);
    // A WRITE in one part hands its whole buffer over (the reply does not read it); the
    // parts of a longer one are slices of it, which the core cannot take.
    if (part.op == BlockOp::write && size == request->buffer.size()) {
      part.owned = &request->buffer;
    }
    if (!submit_part(request, part)) return;
    done += size;
  }
}

bool NbdServer::submit_part(const std::shared_ptr<Request>& request, BlockRequest part) {
  if (request->abort_error) return false;
  HAST_ASSERT(part.op == BlockOp::flush || part.length > 0);
  part.id = next_part_id_++;
  request_nodes_.insert(parts_, part.id, request);
  request->parts_pending++;
  stats_.parts++;
  // Suspends while the queue is full: the core sets the pace.
  auto pushed = queue_.push(part);
  if (pushed) return true;
  request_nodes_.erase(parts_, part.id);
  request->parts_pending--;
  if (!request->error) request->error = Error(Errc::cancelled, "NBD server closed");
  return false;
}

void NbdServer::wait_parts(Request& request) {
  while (request.parts_pending > 0 && !request.abort_error) {
    // Cancelled only at the node's death: nobody will complete the parts then.
    if (request.changed.wait(std::nullopt) == fiber::WakeReason::cancelled) {
      request.abort_error = NbdError::shutdown;
    }
  }
}

// Success only when every part completed and none failed: never a false success.
void NbdServer::reply(Session& session, Request& request) {
  NbdError error = NbdError::none;
  if (request.abort_error) {
    error = *request.abort_error;
  } else if (request.error) {
    error = nbd_error_of(request.error->code());
  }
  HAST_ASSERT(error != NbdError::none || request.parts_pending == 0);
  SimpleReply simple{error, request.header.handle};
  Result<void> sent = ok();
  if (error == NbdError::none && request.header.command == Command::read) {
    // The reply header and the data in one gathered send, without copying them together.
    auto head = encode_simple_reply(simple);
    sent = send_locked(session, head, request.buffer.span());
  } else {
    if (error != NbdError::none) stats_.requests_failed++;
    sent = queue_reply(session, simple);
  }
  if (!sent) {
    log_debug(log_, "[{}] NBD client {}: reply to handle {:#x} not sent: {}", options_.export_name,
              session.peer, simple.handle, sent.error().message());
  }
}

Result<void> NbdServer::send_reply(Session& session, const SimpleReply& reply) {
  auto bytes = encode_simple_reply(reply);
  return send_locked(session, bytes);
}

// Replies completed together leave in one send: the first fiber to queue one lets the
// other runnable fibers queue theirs, then sends the lot (any send under the lock takes
// the queued ones along). A reply queued behind another fiber's is reported sent here;
// if that send fails, the connection closes and the client learns nothing of either.
Result<void> NbdServer::queue_reply(Session& session, const SimpleReply& reply) {
  auto bytes = encode_simple_reply(reply);
  session.outbox.insert(session.outbox.end(), bytes.begin(), bytes.end());
  if (session.outbox_sender) return ok();
  session.outbox_sender = true;
  scheduler_.yield_to_others(batch_gather_rounds);
  Result<void> sent = ok();
  // Replies queued while this fiber waited for the lock or sent go out next.
  while (!session.outbox.empty() && sent)
    sent = send_locked(session, {});
  session.outbox_sender = false;
  if (!sent) session.outbox.clear();  // the connection is closed
  return sent;
}

Result<void> NbdServer::send_locked(Session& session, std::span<const std::byte> head,
                                    std::span<const std::byte> body) {
  Deadline deadline = deadline_after(scheduler_.clock(), options_.io_timeout);
  HAST_TRY(session.send_lock.acquire(deadline));
  fiber::Permit permit(session.send_lock);
  // The queued simple replies go first, in the same send. They move to `sending` (the
  // lock holder's), and the outbox takes sending's emptied storage for replies queued
  // meanwhile: neither allocates once both have grown.
  std::vector<std::byte>& queued = session.sending;
  HAST_ASSERT(queued.empty());
  // Emptied however this ends, an unwound fiber included (the next holder asserts it).
  struct ClearOnExit {
    std::vector<std::byte>& bytes;
    ~ClearOnExit() { bytes.clear(); }
  } clear_queued{queued};
  if (!session.outbox.empty()) {
    queued.swap(session.outbox);
    queued.insert(queued.end(), head.begin(), head.end());
    head = queued;
  }
  if (head.empty() && body.empty()) return ok();
  auto sent = session.connection->send_gather(head, body, deadline);
  // A reply cut short leaves the stream out of step: the client cannot go on.
  if (!sent) session.connection->close();
  return sent;
}

// ---- BlockFrontend ----

Result<BlockRequest> NbdServer::next_request() {
  auto part = queue_.pop();
  if (!part) return fail(Errc::cancelled, "NBD server closed");
  HAST_ASSERT(parts_.count(part->id) == 1);
  return part;
}

// May run after the request was answered (aborted) or its client left: the request then
// only loses one of its last references here.
void NbdServer::complete(const BlockRequest& part, Result<void> result) {
  auto found = parts_.find(part.id);
  HAST_ASSERT_MSG(found != parts_.end(), "NBD: complete() of request {}, not outstanding", part.id);
  std::shared_ptr<Request> request = std::move(found->second);
  request_nodes_.erase(parts_, found);
  HAST_ASSERT(request->parts_pending > 0);
  request->parts_pending--;
  if (!result) {
    stats_.parts_failed++;
    if (!request->error) request->error = result.error();
  }
  request->changed.wake_all();
}

// ---- Closing ----

void NbdServer::close() {
  if (closed_) return;
  // Order: nothing new comes in (listener, queue), what was never taken fails, what the
  // core holds is answered without it, and only then do the readers stop.
  closed_ = true;
  log_info(log_, "[{}] NBD server closing ({} clients, {} block requests outstanding).",
           options_.export_name, sessions_.size(), parts_.size());
  if (listener_ != nullptr) listener_->close();
  queue_.close();
  fail_queued_parts();
  for (auto& [id, session] : sessions_)
    abort_requests(*session, NbdError::shutdown);
  // The readers stop; the request fibers are not cancelled: they send their replies.
  fibers_.cancel();
  if (!scheduler_.in_fiber() || scheduler_.is_shut_down()) {
    close_connections();
    return;
  }
  auto drained = fibers_.join(deadline_after(scheduler_.clock(), options_.close_timeout));
  if (drained) return;
  // Clients that do not read their replies: cut them off; every blocked send fails.
  close_connections();
  fibers_.join_all();
  HAST_ASSERT(sessions_.empty());
}

void NbdServer::abort_requests(Session& session, NbdError error) {
  HAST_ASSERT(error != NbdError::none);
  for (auto& [sequence, request] : session.in_flight) {
    if (request->abort_error) continue;
    request->abort_error = error;
    request->changed.wake_all();
  }
}

// Parts the core never took: they fail now, so their requests can answer.
void NbdServer::fail_queued_parts() {
  HAST_ASSERT(queue_.closed());
  while (true) {
    auto queued = queue_.try_pop();
    if (!queued) return;
    complete(*queued, fail(Errc::cancelled, "NBD server closed"));
  }
}

void NbdServer::close_connections() {
  for (auto& [id, session] : sessions_)
    session->connection->close();
}

}  // namespace hast::nbd
