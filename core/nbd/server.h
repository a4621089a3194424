// NbdServer: the NBD frontend of one resource (reference/frontends.md §2, DESIGN.md §7).
//
// Model: the server listens on one address of the injected Network (the simulator's or
// the daemon's io_uring sockets; no OS call here), accepts any number of clients up to
// clients_max, runs the fixed newstyle handshake with each (export: the resource's name,
// or the empty default name) and then serves transmission. It is the BlockFrontend the
// primary pulls requests from.
//
// Fibers: one accept fiber; per client one reader fiber (handshake, then request headers
// and WRITE payloads, in stream order) and one fiber per request in flight. A request
// fiber cuts its request into parts no longer than part_bytes_max (trim_part_bytes_max
// for TRIM), queues them for next_request() (a bounded queue: back-pressure), waits until
// complete() was called for every part, and sends one simple reply: success only when
// every part succeeded, else the error of the first part that failed. Replies of one
// client go out whole (a send lock) and may go out of order (NBD matches them by handle);
// simple replies completed at the same time go out together, in one send.
// Each client has at most requests_per_client_max requests and buffer_bytes_per_client_max
// payload bytes in flight (one larger request alone is allowed); its reader waits for a
// slot before it reads further.
//
// Buffers: a part's `data` points into its request's buffer, which lives until the core
// has completed every part, whatever happened to the client or the server meanwhile. A
// WRITE that goes to the core as one part also offers its buffer (BlockRequest::owned):
// the core may keep it past complete() instead of copying it (an async remote leg). The
// parts of a longer WRITE are slices of one buffer and offer nothing.
//
// Errors: a malformed request answered with an error keeps its client (a rejected WRITE's
// payload is read and dropped, so framing survives); a bad magic, a WRITE payload over
// payload_bytes_max, unknown client flags or an unknown EXPORT_NAME close that client
// only. Each connect, disconnect and protocol error is logged with the client's address.
//
// Flush and CAN_MULTI_CONN: a FLUSH becomes one core flush, which makes durable every
// write the core completed before it, from any client; a reply goes out only after the
// core completed the request. So a flush covers every write answered on any connection,
// and the server advertises CAN_MULTI_CONN.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>

#include "core/fiber/channel.h"
#include "core/fiber/node_reuse.h"
#include "core/fiber/task_group.h"
#include "core/io/byte_buffer.h"
#include "core/io/frontend.h"
#include "core/io/log.h"
#include "core/io/network.h"
#include "core/nbd/protocol.h"
#include "core/proto/frame.h"

namespace hast::nbd {

struct NbdServerOptions {
  Address address;
  std::string export_name;        // the resource's name; the empty name also selects it
  std::uint64_t export_size = 0;  // bytes, a multiple of block_size_min
  // The provider's sector size: requests must be aligned to it (advertised as the minimum
  // block size). A power of two, 512 or more.
  std::uint32_t block_size_min = 512;
  std::uint32_t block_size_preferred = 4096;
  // Longest part of a READ, WRITE or WRITE_ZEROES handed to the core: the replication
  // protocol's request size (HAST's MAXPHYS). Advertised as the maximum block size; a
  // longer request (from a client that did not negotiate block sizes) is split.
  std::uint32_t part_bytes_max = proto::request_size_send_default;
  // Longest part of a TRIM (a DELETE carries no payload, so it may be longer).
  std::uint32_t trim_part_bytes_max = 16 * 1024 * 1024;
  // Largest READ or WRITE accepted. A longer READ is answered EINVAL; a longer WRITE is
  // answered EINVAL and its client closed (its payload is not read).
  std::uint32_t payload_bytes_max = 32 * 1024 * 1024;
  std::size_t clients_max = 32;
  std::size_t requests_per_client_max = 64;
  std::uint64_t buffer_bytes_per_client_max = 64 * 1024 * 1024;
  // Parts waiting for next_request(); a full queue holds the request fibers back.
  std::size_t queue_capacity = 128;
  // Bounds the whole handshake of a client.
  Duration handshake_timeout = std::chrono::seconds(30);
  // Bounds sending one reply, and receiving one WRITE payload once its header arrived.
  // An idle client (between requests) is never timed out.
  Duration io_timeout = std::chrono::seconds(60);
  // How long close() lets error replies drain before it closes the connections.
  Duration close_timeout = std::chrono::seconds(2);
};

struct NbdServerStats {
  std::uint64_t clients_accepted = 0;
  std::uint64_t clients_refused = 0;    // over clients_max, or after close()
  std::uint64_t protocol_errors = 0;    // clients closed for breaking the protocol
  std::uint64_t requests = 0;           // transmission requests received, DISC included
  std::uint64_t requests_rejected = 0;  // answered with an error before reaching the core
  std::uint64_t requests_failed = 0;    // answered with an error after reaching the core
  std::uint64_t parts = 0;              // BlockRequests queued for the core
  std::uint64_t parts_failed = 0;       // completed with an error
};

class NbdServer final : public BlockFrontend {
 public:
  // `options` must be consistent (asserted): block sizes powers of two, part sizes and
  // the export size multiples of block_size_min. Nothing happens before start().
  NbdServer(fiber::Scheduler& scheduler, Network& network, Log& log, NbdServerOptions options);
  // Call close() first, from a fiber, and destroy only after the core completed every
  // request it took (asserted, unless the scheduler was shut down: a dead node).
  ~NbdServer() override;
  NbdServer(const NbdServer&) = delete;
  NbdServer& operator=(const NbdServer&) = delete;

  // Listens on options.address and starts accepting clients. Does not suspend. Errors:
  // those of Network::listen (Errc::busy when the address is in use). At most once.
  Result<void> start();

  // Stops serving. Idempotent; called from a fiber (the role change), it suspends for at
  // most about close_timeout:
  // - the listener closes; next_request() fails with Errc::cancelled from now on;
  // - parts still queued complete with Errc::cancelled; every request of every client not
  //   answered yet gets an ESHUTDOWN reply (never a false success), including requests
  //   whose parts the core still holds: their buffers stay valid until complete();
  // - then every client connection is closed and every fiber of the server has ended.
  // From outside a fiber (scheduler shut down) it only closes what it can.
  void close();

  // BlockFrontend: suspends until a part is queued; Errc::cancelled once closed.
  Result<BlockRequest> next_request() override;
  // BlockFrontend: never suspends; valid after close() too (the result is then dropped if
  // the client was already answered). Asserts that `request` came from next_request()
  // and was not completed before.
  void complete(const BlockRequest& request, Result<void> result) override;

  // The listening address (after start()).
  Address address() const;
  bool closed() const { return closed_; }
  std::size_t client_count() const { return sessions_.size(); }
  // Parts taken or queued and not completed yet.
  std::size_t parts_outstanding() const { return parts_.size(); }
  const NbdServerStats& stats() const { return stats_; }
  const NbdServerOptions& options() const { return options_; }

 private:
  struct Request;
  struct Session;
  enum class Step : std::uint8_t { next_option, transmission, abort };

  // Handshake.
  Result<void> handshake(Session& session);
  Result<Step> negotiate_option(Session& session, Deadline deadline);
  Result<Step> export_name(Session& session, std::span<const std::byte> data, Deadline deadline);
  Result<Step> list(Session& session, std::span<const std::byte> data, Deadline deadline);
  Result<Step> info_or_go(Session& session, Option option, std::span<const std::byte> data,
                          Deadline deadline);
  Result<void> send_option_reply(Session& session, Option option, OptionReply type,
                                 std::string_view message, Deadline deadline);
  bool known_export(std::string_view name) const;
  std::uint16_t transmission_flags() const;

  // Clients and transmission.
  void accept_loop();
  void admit(std::shared_ptr<Connection> connection);
  void serve(const std::shared_ptr<Session>& session);
  void finish(Session& session, const Result<void>& ended);
  Result<void> transmission(Session& session);
  Result<void> dispatch(Session& session, const RequestHeader& header);
  Result<void> reject(Session& session, const RequestHeader& header, const Error& error);
  Result<void> reserve(Session& session, std::uint64_t bytes);
  void release(Session& session, std::uint64_t bytes);

  // One request in flight.
  void run_request(Session& session, const std::shared_ptr<Request>& request);
  void submit_parts(const std::shared_ptr<Request>& request);
  bool submit_part(const std::shared_ptr<Request>& request, BlockRequest part);
  void wait_parts(Request& request);
  void reply(Session& session, Request& request);
  Result<void> send_reply(Session& session, const SimpleReply& reply);
  // A request fiber's simple reply, sent with others completed at the same time.
  Result<void> queue_reply(Session& session, const SimpleReply& reply);
  // Sends the queued simple replies, then `head` then `body` (may be empty) whole, under
  // the session's send lock.
  Result<void> send_locked(Session& session, std::span<const std::byte> head,
                           std::span<const std::byte> body = {});

  // Closing.
  void abort_requests(Session& session, NbdError error);
  void fail_queued_parts();
  void close_connections();
  ExportGeometry geometry() const;

  fiber::Scheduler& scheduler_;
  Network& network_;
  Log& log_;
  NbdServerOptions options_;
  std::unique_ptr<Listener> listener_;
  fiber::Channel<BlockRequest> queue_;
  using RequestMap = std::map<std::uint64_t, std::shared_ptr<Request>>;
  RequestMap parts_;  // by BlockRequest id
  // Nodes of parts_ and of the sessions' in_flight (the same type), reused.
  fiber::NodeReuse<RequestMap> request_nodes_;
  std::map<std::uint64_t, std::shared_ptr<Session>> sessions_;
  fiber::TaskGroup fibers_;  // the accept loop and every client's reader
  std::uint64_t next_part_id_ = 1;
  std::uint64_t next_session_id_ = 1;
  bool started_ = false;
  bool closed_ = false;
  NbdServerStats stats_;
};

}  // namespace hast::nbd
