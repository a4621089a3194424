// The NBD wire protocol, server side: constants and a pure codec (no I/O).
//
// Scope (reference/frontends.md §2, NetworkBlockDevice doc/proto.md): the fixed newstyle
// handshake (greeting, client flags, option haggling with EXPORT_NAME, ABORT, LIST, INFO,
// GO) and the transmission phase with simple replies only (no structured replies, no
// TLS, no metadata contexts). Every field is big-endian.
//
//   S: NBDMAGIC u64 | IHAVEOPT u64 | u16 handshake flags
//   C: u32 client flags
//   C: IHAVEOPT u64 | u32 option | u32 length | data            (repeated)
//   S: reply magic u64 | u32 option | u32 reply type | u32 length | data
//   C: request magic u32 | u16 command flags | u16 type | u64 handle | u64 offset
//      | u32 length | [length bytes for WRITE]
//   S: simple reply magic u32 | u32 error | u64 handle | [length bytes for a good READ]
//
// Decoders take bytes from the network: they return Result and never assert on their
// input (Errc::corruption for a bad magic, Errc::invalid_argument for a malformed or
// unacceptable field). Encoders take values this program built: their preconditions are
// assertions.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace hast::nbd {

// ---- Magic numbers and sizes ----

inline constexpr std::uint64_t nbd_magic = 0x4e42444d41474943;           // "NBDMAGIC"
inline constexpr std::uint64_t option_magic = 0x49484156454f5054;        // "IHAVEOPT"
inline constexpr std::uint64_t option_reply_magic = 0x0003e889045565a9;  // option replies
inline constexpr std::uint32_t request_magic = 0x25609513;
inline constexpr std::uint32_t simple_reply_magic = 0x67446698;

inline constexpr std::size_t greeting_size = 18;  // two magics and the handshake flags
inline constexpr std::size_t client_flags_size = 4;
inline constexpr std::size_t option_header_size = 16;
inline constexpr std::size_t option_reply_header_size = 20;
inline constexpr std::size_t request_header_size = 28;
inline constexpr std::size_t simple_reply_size = 16;
// EXPORT_NAME's reply: size, transmission flags, then 124 zero bytes unless the client
// set NO_ZEROES.
inline constexpr std::size_t export_name_reply_size = 10;
inline constexpr std::size_t export_name_zeroes = 124;
// Longest string (export name) the protocol allows.
inline constexpr std::size_t name_size_max = 4096;

// ---- Handshake ----

// Handshake flags the server sends.
inline constexpr std::uint16_t handshake_fixed_newstyle = 1u << 0;
inline constexpr std::uint16_t handshake_no_zeroes = 1u << 1;
// Client flags: a client may set only the bits the server offered.
inline constexpr std::uint32_t client_fixed_newstyle = 1u << 0;
inline constexpr std::uint32_t client_no_zeroes = 1u << 1;

// Option types. Values outside the list are kept as they came (the server answers them
// with ERR_UNSUP).
enum class Option : std::uint32_t {
  export_name = 1,
  abort = 2,
  list = 3,
  starttls = 5,
  info = 6,
  go = 7,
  structured_reply = 8,
  list_meta_context = 9,
  set_meta_context = 10,
};

// Option reply types; errors have bit 31 set.
enum class OptionReply : std::uint32_t {
  ack = 1,
  server = 2,
  info = 3,
  err_unsup = 0x80000001,
  err_policy = 0x80000002,
  err_invalid = 0x80000003,
  err_platform = 0x80000004,
  err_tls_reqd = 0x80000005,
  err_unknown = 0x80000006,
  err_shutdown = 0x80000007,
  err_block_size_reqd = 0x80000008,
  err_too_big = 0x80000009,
};

// Information types of INFO and GO.
enum class InfoType : std::uint16_t { export_info = 0, name = 1, description = 2, block_size = 3 };

// Transmission flags (sent with the export's size).
inline constexpr std::uint16_t transmission_has_flags = 1u << 0;
inline constexpr std::uint16_t transmission_read_only = 1u << 1;
inline constexpr std::uint16_t transmission_send_flush = 1u << 2;
inline constexpr std::uint16_t transmission_send_fua = 1u << 3;
inline constexpr std::uint16_t transmission_rotational = 1u << 4;
inline constexpr std::uint16_t transmission_send_trim = 1u << 5;
inline constexpr std::uint16_t transmission_send_write_zeroes = 1u << 6;
inline constexpr std::uint16_t transmission_send_df = 1u << 7;
inline constexpr std::uint16_t transmission_can_multi_conn = 1u << 8;

// ---- Transmission ----

// Request types. Values outside the list are kept as they came (answered with EINVAL).
enum class Command : std::uint16_t {
  read = 0,
  write = 1,
  disc = 2,
  flush = 3,
  trim = 4,
  cache = 5,
  write_zeroes = 6,
  block_status = 7,
  resize = 8,
};

// Command flags.
inline constexpr std::uint16_t command_flag_fua = 1u << 0;
inline constexpr std::uint16_t command_flag_no_hole = 1u << 1;
inline constexpr std::uint16_t command_flag_df = 1u << 2;
inline constexpr std::uint16_t command_flag_req_one = 1u << 3;
inline constexpr std::uint16_t command_flag_fast_zero = 1u << 4;

// The error field of a reply: the errno values the protocol defines (Linux numbering,
// whatever the platform).
enum class NbdError : std::uint32_t {
  none = 0,
  perm = 1,
  io = 5,
  nomem = 12,
  inval = 22,
  nospc = 28,
  overflow = 75,
  notsup = 95,
  shutdown = 108,
};

std::string_view option_name(Option option);
std::string_view command_name(Command command);
std::string_view nbd_error_name(NbdError error);

// The NBD error a failed block operation is reported with: invalid_argument → EINVAL,
// no_space → ENOSPC, unsupported → ENOTSUP, cancelled (the server or the role is
// stopping) → ESHUTDOWN, split_brain/busy/refused → EPERM, everything else → EIO.
NbdError nbd_error_of(Errc code);

// ---- Handshake codec ----

// The server's first message.
std::array<std::byte, greeting_size> encode_greeting(std::uint16_t handshake_flags);

// The client's flags. Errc::invalid_argument when a bit is unknown or was not offered in
// `offered` (handshake flags; the server must then drop the connection).
Result<std::uint32_t> decode_client_flags(std::span<const std::byte> bytes, std::uint16_t offered);

struct OptionHeader {
  Option option = Option::export_name;
  std::uint32_t length = 0;  // data bytes that follow

  friend bool operator==(const OptionHeader&, const OptionHeader&) = default;
};

// Errc::corruption when the magic is not IHAVEOPT (the stream is out of step);
// Errc::invalid_argument when `bytes` is not option_header_size long.
Result<OptionHeader> decode_option_header(std::span<const std::byte> bytes);
std::array<std::byte, option_header_size> encode_option_header(const OptionHeader& header);

// EXPORT_NAME's data: the name. Errc::invalid_argument when longer than name_size_max or
// holding a NUL byte.
Result<std::string> decode_export_name(std::span<const std::byte> data);

// INFO's and GO's data: u32 name length, name, u16 count, count × u16 information types.
struct ExportRequest {
  std::string name;
  std::vector<InfoType> infos;

  friend bool operator==(const ExportRequest&, const ExportRequest&) = default;
};

// Errc::invalid_argument when the lengths disagree with the data's size, the name is too
// long or holds a NUL byte (the server answers ERR_INVALID).
Result<ExportRequest> decode_export_request(std::span<const std::byte> data);
std::vector<std::byte> encode_export_request(const ExportRequest& request);

struct OptionReplyHeader {
  Option option = Option::export_name;
  OptionReply type = OptionReply::ack;
  std::uint32_t length = 0;

  friend bool operator==(const OptionReplyHeader&, const OptionReplyHeader&) = default;
};

// One option reply with its data appended.
std::vector<std::byte> encode_option_reply(Option option, OptionReply type,
                                           std::span<const std::byte> data = {});
// For clients (tests): Errc::corruption on a bad magic.
Result<OptionReplyHeader> decode_option_reply_header(std::span<const std::byte> bytes);

// Data of the replies the server sends during option haggling.
std::vector<std::byte> encode_server_entry(std::string_view export_name);  // REP_SERVER
std::vector<std::byte> encode_info_export(std::uint64_t size, std::uint16_t transmission_flags);
std::vector<std::byte> encode_info_name(std::string_view export_name);
std::vector<std::byte> encode_info_block_size(std::uint32_t minimum, std::uint32_t preferred,
                                              std::uint32_t maximum);
// EXPORT_NAME's reply: size, flags and, when `zeroes`, the 124 zero bytes.
std::vector<std::byte> encode_export_name_reply(std::uint64_t size,
                                                std::uint16_t transmission_flags, bool zeroes);

// ---- Transmission codec ----

struct RequestHeader {
  std::uint16_t flags = 0;
  Command command = Command::read;
  std::uint64_t handle = 0;  // opaque, echoed in the reply
  std::uint64_t offset = 0;
  std::uint32_t length = 0;

  friend bool operator==(const RequestHeader&, const RequestHeader&) = default;
};

// Errc::corruption on a bad magic (the stream is out of step: the server closes);
// Errc::invalid_argument when `bytes` is not request_header_size long. Unknown commands
// and flags decode; validate_request() judges them.
Result<RequestHeader> decode_request_header(std::span<const std::byte> bytes);
std::array<std::byte, request_header_size> encode_request_header(const RequestHeader& header);

struct SimpleReply {
  NbdError error = NbdError::none;
  std::uint64_t handle = 0;

  friend bool operator==(const SimpleReply&, const SimpleReply&) = default;
};

std::array<std::byte, simple_reply_size> encode_simple_reply(const SimpleReply& reply);
// For clients (tests): Errc::corruption on a bad magic.
Result<SimpleReply> decode_simple_reply(std::span<const std::byte> bytes);

// What a request is judged against.
struct ExportGeometry {
  std::uint64_t size = 0;               // bytes, a multiple of block_size_min
  std::uint32_t block_size_min = 1;     // offsets and lengths are multiples of it
  std::uint32_t payload_bytes_max = 0;  // largest READ or WRITE accepted
};

// Judges a decoded request before anything is done for it:
// - flags other than FUA (accepted on every command) and NO_HOLE (ignored) → EINVAL;
// - commands other than READ, WRITE, DISC, FLUSH, TRIM, WRITE_ZEROES → EINVAL;
// - READ or WRITE longer than payload_bytes_max → EINVAL;
// - offset or length not a multiple of block_size_min → EINVAL;
// - a range past the export's end → ENOSPC for WRITE and WRITE_ZEROES, EINVAL otherwise.
// Errors: Errc::invalid_argument or Errc::no_space (map with nbd_error_of), with a
// context naming the problem. FLUSH and DISC ignore offset and length. A zero length is
// valid (the server answers it at once).
Result<void> validate_request(const RequestHeader& request, const ExportGeometry& geometry);

}  // namespace hast::nbd
