// Typed messages of the replication protocol: the two-connection handshake
// (reference/hast-spec.md §6.3, §8.1–8.2) and the requests and replies that follow
// (§6.4). The control protocol (§6.7) is in core/proto/control_messages.h.
//
// Model: each message is a plain struct with `Nv to_nv() const` and `static Result<T>
// from_nv(const Nv&)`. to_nv adds the fields in FreeBSD's order (the order is visible on
// the wire and pinned by golden tests); building a message FreeBSD never sends (a zero
// seq, memsync on a READ) is a bug and asserted. from_nv validates the structure: a
// missing or mistyped field fails with Errc::corruption naming the message and the
// field. A value from_nv accepts re-encodes to an equal value (from_nv(to_nv(m)) == m),
// except a Request without seq, which to_nv refuses and validate_request rejects.
// Payloads (WRITE data, READ data, the handshake activemap) are not part of these
// structs: the caller appends them with encode_payload (core/proto/transform.h), whose
// fields follow the message's own.
//
// FreeBSD treats a missing field as 0, so fields whose legal values exclude 0 (`seq`,
// `cmd`) read 0 as "absent" here too. Flag-like fields FreeBSD only tests for existence
// (`virgin`, `wait`, `memsync`, `received`) are read the same way.
//
// Extensions (DESIGN.md §1.1): extra nv fields FreeBSD ignores, announced by both sides
// in the second handshake message and its reply, and used only when the peer announced
// them:
//   ext_batchflush  uint8 1   "I send (primary) / accept (secondary) one remote FLUSH
//                              covering a batch of completed writes before their extents
//                              are cleared, so the secondary need not make each write
//                              durable before its final reply" (DESIGN.md §1.2 item 9).
//   ext_maxrequest  uint32    the largest request and sync chunk in bytes the sender
//                              accepts, 128 KiB..1 MiB.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/proto/frame.h"
#include "core/proto/nv.h"
#include "core/result.h"

namespace hast::proto {

// The random 16-byte token that ties a resource's second connection to its first.
inline constexpr std::size_t token_size = 16;
using Token = std::array<std::uint8_t, token_size>;

// Roles on the wire and in metadata (FreeBSD's HAST_ROLE_*).
enum class Role : std::uint8_t { undef = 0, init = 1, primary = 2, secondary = 3 };
// "init", "primary", "secondary"; "unknown" for undef (FreeBSD's role2str).
std::string_view role_name(Role role);
// The inverse of role_name ("unknown" → undef); nullopt for any other text.
std::optional<Role> parse_role(std::string_view name);

// Which node the synchronisation copies from (`syncsrc`, FreeBSD's HAST_SYNCSRC_*).
enum class SyncSource : std::uint8_t { undef = 0, primary = 1, secondary = 2 };

// errmsg values of refusals, sent exactly as FreeBSD sends them (a FreeBSD primary
// matches "Split-brain condition!" literally).
inline constexpr std::string_view errmsg_split_brain = "Split-brain condition!";
inline constexpr std::string_view errmsg_not_configured = "Resource not configured.";
inline constexpr std::string_view errmsg_no_access = "No access to the resource.";
inline constexpr std::string_view errmsg_token_mismatch = "Token doesn't match.";
// "Remote node acts as <role> for the resource and not as secondary."
std::string errmsg_wrong_role(Role role);
// "Resource unique ID mismatch (primary=<p>, secondary=<s>)."
std::string errmsg_resuid_mismatch(std::uint64_t primary, std::uint64_t secondary);

// Our extensions, as announced by one side (see the file comment).
struct Extensions {
  bool batch_flush = false;  // ext_batchflush
  // ext_maxrequest: request_size_send_default..request_size_accept_max. A larger value
  // read from a peer is clamped to request_size_accept_max; a smaller one is rejected.
  std::optional<std::uint32_t> request_size_max;

  friend bool operator==(const Extensions&, const Extensions&) = default;
};

// The largest request and sync chunk we may send to a peer that announced `peer`.
std::uint32_t request_size_send_max(const Extensions& peer);

// ---- Handshake (§6.3) ----

// Primary → secondary, first message on connection A: {resource, version}.
struct HelloRequest {
  std::string resource;
  // The sender's protocol version; `version` absent or 0 reads as 1 (v1 peers). Any
  // value up to 255 is accepted: the secondary negotiates min(version, 2).
  std::uint8_t version = protocol_version_max;

  Nv to_nv() const;
  static Result<HelloRequest> from_nv(const Nv& nv);
  friend bool operator==(const HelloRequest&, const HelloRequest&) = default;
};

// The token of a connection's first message, for the secondary's acceptor: nullopt when
// there is none (a first connection, HelloRequest), the token when it is a 16-byte uint8
// array (a second connection, IdentityRequest); Errc::corruption for any other `token`
// (FreeBSD closes without a reply).
Result<std::optional<Token>> hello_token(const Nv& nv);

// Secondary → primary on A, answer to HelloRequest: {version, token}.
struct HelloReply {
  std::uint8_t version = protocol_version_max;  // negotiated; absent/0 reads as 1
  Token token{};

  Nv to_nv() const;
  // Errc::unsupported for a version above 2 ("Invalid version received (N)."),
  // Errc::corruption for a missing or wrongly sized token.
  static Result<HelloReply> from_nv(const Nv& nv);
  friend bool operator==(const HelloReply&, const HelloReply&) = default;
};

// Secondary → primary, instead of a reply: {errmsg, [wait uint8 1]}. `wait` (sent when
// the secondary node is itself primary) tells the primary to retry later (EBUSY).
struct Refusal {
  std::string errmsg;
  bool wait = false;

  Nv to_nv() const;
  static Result<Refusal> from_nv(const Nv& nv);
  friend bool operator==(const Refusal&, const Refusal&) = default;
};

// True when a handshake reply is a Refusal (it carries `errmsg`); checked first.
bool is_refusal(const Nv& nv);

// Primary → secondary, the message on connection B: {resource, token, [virgin int8 1],
// resuid, localcnt, remotecnt} plus our extensions.
struct IdentityRequest {
  std::string resource;
  Token token{};
  bool virgin = false;  // the primary generated its resuid just now
  std::uint64_t resuid = 0;
  std::uint64_t local_count = 0;   // localcnt
  std::uint64_t remote_count = 0;  // remotecnt
  Extensions extensions;

  Nv to_nv() const;
  static Result<IdentityRequest> from_nv(const Nv& nv);
  friend bool operator==(const IdentityRequest&, const IdentityRequest&) = default;
};

// Secondary → primary on A, the handshake's final answer: {datasize int64, extentsize
// int32, localcnt, remotecnt, [virgin int8 1], syncsrc uint8, mapsize uint32} plus our
// extensions, then `mapsize` bytes of activemap through the payload pipeline.
struct AcceptReply {
  std::int64_t datasize = 0;
  std::int32_t extentsize = 0;
  std::uint64_t local_count = 0;   // the secondary's localcnt
  std::uint64_t remote_count = 0;  // the secondary's remotecnt
  bool virgin = false;             // the secondary adopted the primary's resuid just now
  SyncSource sync_source = SyncSource::primary;  // primary or secondary, never undef
  std::uint32_t mapsize = 0;
  Extensions extensions;

  Nv to_nv() const;
  static Result<AcceptReply> from_nv(const Nv& nv);
  friend bool operator==(const AcceptReply&, const AcceptReply&) = default;
};

// ---- Requests and replies (§6.4) ----

enum class RequestCommand : std::uint8_t {
  read = 1,
  write = 2,
  discard = 3,  // DELETE (BIO_DELETE, TRIM) on the wire
  flush = 4,
  keepalive = 5,
};
std::string_view request_command_name(RequestCommand command);  // "READ", "WRITE", ...

// Primary → secondary on A: {cmd, seq, offset, length, [memsync uint8 1]}, then the
// payload pipeline's fields for a WRITE. KEEPALIVE carries only `cmd`.
struct Request {
  RequestCommand cmd = RequestCommand::keepalive;
  std::uint64_t seq = 0;  // 0 = absent: only KEEPALIVE; validate_request rejects it
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  bool memsync = false;  // WRITE only: the secondary sends an early `received` reply
  // KEEPALIVE only, extension `ext_syncdone` (uint8 1), sent only to a peer that announced
  // our extensions: the synchronisation that made the secondary a sync target is complete
  // and durable, so it is consistent again (DESIGN.md §1.2 item 8).
  bool sync_done = false;

  // Asserts what FreeBSD's primary guarantees: KEEPALIVE has every other field 0 and no
  // memsync; every other command has a non-zero seq; memsync only on WRITE.
  Nv to_nv() const;
  // Structure only (validate_request checks values). Errc::corruption for a missing or
  // unknown cmd, a mistyped field, or READ/WRITE/DELETE without offset or length. A
  // missing seq reads as 0. KEEPALIVE's other fields and memsync on a non-WRITE are
  // ignored, as FreeBSD's secondary ignores them.
  static Result<Request> from_nv(const Nv& nv);
  friend bool operator==(const Request&, const Request&) = default;
};

// The secondary's checks of a decoded request (FreeBSD's requnpack), failing with
// Errc::invalid_argument and the reason; the caller answers EINVAL. A non-KEEPALIVE
// request needs a seq; READ/WRITE/DELETE need length > 0, READ/WRITE length <=
// `request_size_max` (DELETE unlimited), offset and length multiples of `sector_size` and
// offset + length <= `datasize` (checked without overflow). FLUSH's offset and length
// are not checked. Asserts sector_size > 0.
Result<void> validate_request(const Request& request, std::uint32_t sector_size,
                              std::uint64_t datasize, std::uint32_t request_size_max);

// Secondary → primary on B: {seq, [received int8 1], [error int16]}, then for a
// successful READ the payload pipeline's fields.
struct Reply {
  std::uint64_t seq = 0;  // never 0
  // The early acknowledgement of a memsync WRITE (never with an error).
  bool received = false;
  // FreeBSD errno value (see wire_errno), 0 on success; sent only when non-zero.
  std::int16_t error = 0;

  // Asserts seq != 0 and not (received and error).
  Nv to_nv() const;
  // Errc::corruption for a missing (or 0) seq, a mistyped error, or received with error.
  static Result<Reply> from_nv(const Nv& nv);
  friend bool operator==(const Reply&, const Reply&) = default;
};

// errno values as FreeBSD numbers them: the wire carries the sender's errno, and every
// HAST peer we pair with (FreeBSD, or us) uses these. Only the low POSIX numbers agree
// with Linux.
namespace wire_errno {
inline constexpr std::int16_t eperm = 1;
inline constexpr std::int16_t enoent = 2;
inline constexpr std::int16_t eintr = 4;
inline constexpr std::int16_t eio = 5;
inline constexpr std::int16_t enxio = 6;
inline constexpr std::int16_t enomem = 12;
inline constexpr std::int16_t ebusy = 16;
inline constexpr std::int16_t einval = 22;
inline constexpr std::int16_t enospc = 28;
inline constexpr std::int16_t erofs = 30;
inline constexpr std::int16_t eopnotsupp = 45;
inline constexpr std::int16_t enotconn = 57;
inline constexpr std::int16_t etimedout = 60;
inline constexpr std::int16_t econnrefused = 61;
inline constexpr std::int16_t eintegrity = 97;
}  // namespace wire_errno

// The wire errno for an error kind (io → EIO, invalid_argument → EINVAL, no_space →
// ENOSPC, unsupported → EOPNOTSUPP, ...); never 0.
std::int16_t wire_errno_from_errc(Errc code);
// The error kind of a non-zero wire errno; unknown values map to Errc::io. Asserts errno
// != 0.
Errc errc_from_wire_errno(std::int16_t wire_errno);

}  // namespace hast::proto
