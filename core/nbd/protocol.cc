// The NBD wire codec (see protocol.h).
//
// Method: fixed-size messages are written with store_be into std::array, variable ones
// appended through Writer; received bytes are read through Reader only after the decoder
// has checked that enough of them are there, so Reader's assertions guard this file's
// own arithmetic, never the peer's input. Lengths from the wire are compared in 64 bits,
// where no sum of two 32-bit fields can wrap.
#include "core/nbd/protocol.h"

#include <algorithm>

#include <fmt/format.h>

namespace hast::nbd {
namespace {

static_assert(greeting_size == 8 + 8 + 2);
static_assert(option_header_size == 8 + 4 + 4);
static_assert(option_reply_header_size == 8 + 4 + 4 + 4);
static_assert(request_header_size == 4 + 2 + 2 + 8 + 8 + 4);
static_assert(simple_reply_size == 4 + 4 + 8);
static_assert(export_name_reply_size == 8 + 2);

// Big-endian stores and loads of `width` bytes.
void store_be(std::span<std::byte> out, std::uint64_t value, std::size_t width) {
  HAST_ASSERT(out.size() >= width);
  HAST_ASSERT(width <= 8);
  for (std::size_t i = 0; i < width; i++)
    out[i] = static_cast<std::byte>(value >> (8 * (width - 1 - i)));
}

std::uint64_t load_be(std::span<const std::byte> in, std::size_t width) {
  HAST_ASSERT(in.size() >= width);
  HAST_ASSERT(width <= 8);
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < width; i++)
    value = value << 8 | std::to_integer<std::uint64_t>(in[i]);
  return value;
}

// Appends big-endian integers and byte strings to a growing message.
class Writer {
 public:
  void u16(std::uint64_t value) { put(value, 2); }
  void u32(std::uint64_t value) { put(value, 4); }
  void u64(std::uint64_t value) { put(value, 8); }
  void bytes(std::span<const std::byte> data) { out_.insert(out_.end(), data.begin(), data.end()); }
  void text(std::string_view data) { bytes(std::as_bytes(std::span(data.data(), data.size()))); }
  std::vector<std::byte> take() { return std::move(out_); }

 private:
  void put(std::uint64_t value, std::size_t width) {
    std::size_t at = out_.size();
    out_.resize(at + width);
    store_be(std::span(out_).subspan(at), value, width);
  }
  std::vector<std::byte> out_;
};

// Reads big-endian integers from received bytes; callers check remaining() first.
class Reader {
 public:
  explicit Reader(std::span<const std::byte> in) : in_(in) {}
  std::size_t remaining() const { return in_.size() - at_; }
  std::uint64_t take(std::size_t width) {
    HAST_ASSERT(remaining() >= width);
    std::uint64_t value = load_be(in_.subspan(at_), width);
    at_ += width;
    return value;
  }
  std::span<const std::byte> take_bytes(std::size_t size) {
    HAST_ASSERT(remaining() >= size);
    auto part = in_.subspan(at_, size);
    at_ += size;
    return part;
  }

 private:
  std::span<const std::byte> in_;
  std::size_t at_ = 0;
};

Unexpected invalid(std::string context) {
  return fail(Errc::invalid_argument, std::move(context));
}

Result<void> check_size(std::span<const std::byte> bytes, std::size_t expected,
                        std::string_view what) {
  if (bytes.size() == expected) return ok();
  return invalid(fmt::format("{} of {} bytes, expected {}", what, bytes.size(), expected));
}

// A protocol string: at most name_size_max bytes, no NUL.
Result<std::string> decode_string(std::span<const std::byte> data, std::string_view what) {
  if (data.size() > name_size_max) {
    return invalid(
        fmt::format("{} of {} bytes, over the limit of {}", what, data.size(), name_size_max));
  }
  if (std::find(data.begin(), data.end(), std::byte{0}) != data.end()) {
    return invalid(fmt::format("{} holds a NUL byte", what));
  }
  return std::string(reinterpret_cast<const char*>(data.data()), data.size());
}

bool writes_data(Command command) {
  return command == Command::write || command == Command::write_zeroes;
}

// Names for logs, looked up in small tables (values outside them are a peer's choice).
template <typename Enum>
struct Named {
  Enum value;
  std::string_view name;
};

template <typename Enum, std::size_t N>
std::string_view lookup(const Named<Enum> (&table)[N], Enum value, std::string_view unknown) {
  for (const Named<Enum>& entry : table) {
    if (entry.value == value) return entry.name;
  }
  return unknown;
}

constexpr Named<Option> option_names[] = {
    {Option::export_name, "EXPORT_NAME"},
    {Option::abort, "ABORT"},
    {Option::list, "LIST"},
    {Option::starttls, "STARTTLS"},
    {Option::info, "INFO"},
    {Option::go, "GO"},
    {Option::structured_reply, "STRUCTURED_REPLY"},
    {Option::list_meta_context, "LIST_META_CONTEXT"},
    {Option::set_meta_context, "SET_META_CONTEXT"},
};

constexpr Named<Command> command_names[] = {
    {Command::read, "READ"},
    {Command::write, "WRITE"},
    {Command::disc, "DISC"},
    {Command::flush, "FLUSH"},
    {Command::trim, "TRIM"},
    {Command::cache, "CACHE"},
    {Command::write_zeroes, "WRITE_ZEROES"},
    {Command::block_status, "BLOCK_STATUS"},
    {Command::resize, "RESIZE"},
};

constexpr Named<NbdError> error_names[] = {
    {NbdError::none, "success"},
    {NbdError::perm, "EPERM"},
    {NbdError::io, "EIO"},
    {NbdError::nomem, "ENOMEM"},
    {NbdError::inval, "EINVAL"},
    {NbdError::nospc, "ENOSPC"},
    {NbdError::overflow, "EOVERFLOW"},
    {NbdError::notsup, "ENOTSUP"},
    {NbdError::shutdown, "ESHUTDOWN"},
};

}  // namespace

std::string_view option_name(Option option) {
  return lookup(option_names, option, "unknown option");
}

std::string_view command_name(Command command) {
  return lookup(command_names, command, "unknown command");
}

std::string_view nbd_error_name(NbdError error) {
  return lookup(error_names, error, "unknown error");
}

NbdError nbd_error_of(Errc code) {
  // EIO is the answer a client can do least wrong with; the others name a cause the
  // client may act on (its request, the device's room, a role change, the policy).
  switch (code) {
    case Errc::invalid_argument:
      return NbdError::inval;
    case Errc::no_space:
      return NbdError::nospc;
    case Errc::unsupported:
      return NbdError::notsup;
    case Errc::cancelled:
      return NbdError::shutdown;
    case Errc::split_brain:
    case Errc::busy:
    case Errc::refused:
      return NbdError::perm;
    case Errc::io:
    case Errc::corruption:
    case Errc::not_found:
    case Errc::disconnected:
    case Errc::timed_out:
      return NbdError::io;
  }
  return NbdError::io;
}

// ---- Handshake ----

std::array<std::byte, greeting_size> encode_greeting(std::uint16_t handshake_flags) {
  HAST_ASSERT((handshake_flags & ~(handshake_fixed_newstyle | handshake_no_zeroes)) == 0);
  std::array<std::byte, greeting_size> out{};
  store_be(out, nbd_magic, 8);
  store_be(std::span(out).subspan(8), option_magic, 8);
  store_be(std::span(out).subspan(16), handshake_flags, 2);
  return out;
}

Result<std::uint32_t> decode_client_flags(std::span<const std::byte> bytes, std::uint16_t offered) {
  HAST_TRY(check_size(bytes, client_flags_size, "client flags"));
  auto flags = static_cast<std::uint32_t>(load_be(bytes, 4));
  std::uint32_t allowed = client_fixed_newstyle;
  if ((offered & handshake_no_zeroes) != 0) allowed |= client_no_zeroes;
  if ((flags & ~allowed) != 0) {
    return invalid(fmt::format("client flags {:#x} set bits the server did not offer ({:#x})",
                               flags, allowed));
  }
  return flags;
}

Result<OptionHeader> decode_option_header(std::span<const std::byte> bytes) {
  HAST_TRY(check_size(bytes, option_header_size, "option header"));
  Reader in(bytes);
  std::uint64_t magic = in.take(8);
  if (magic != option_magic) {
    return fail(Errc::corruption, fmt::format("option magic {:#018x}, expected IHAVEOPT", magic));
  }
  OptionHeader header;
  header.option = static_cast<Option>(in.take(4));
  header.length = static_cast<std::uint32_t>(in.take(4));
  HAST_ASSERT(in.remaining() == 0);
  return header;
}

std::array<std::byte, option_header_size> encode_option_header(const OptionHeader& header) {
  std::array<std::byte, option_header_size> out{};
  store_be(out, option_magic, 8);
  store_be(std::span(out).subspan(8), static_cast<std::uint32_t>(header.option), 4);
  store_be(std::span(out).subspan(12), header.length, 4);
  return out;
}

Result<std::string> decode_export_name(std::span<const std::byte> data) {
  return decode_string(data, "export name");
}

Result<ExportRequest> decode_export_request(std::span<const std::byte> data) {
  Reader in(data);
  if (in.remaining() < 4 + 2)
    return invalid(fmt::format("{} bytes of export request", data.size()));
  std::uint64_t name_size = in.take(4);
  // The name must leave room for the count (proto.md: name length <= data length - 6).
  if (name_size > in.remaining() - 2) {
    return invalid(
        fmt::format("export name of {} bytes in {} bytes of data", name_size, data.size()));
  }
  auto name = decode_string(in.take_bytes(name_size), "export name");
  if (!name) return fail(name.error());
  std::uint64_t count = in.take(2);
  if (in.remaining() != count * 2) {
    return invalid(fmt::format("{} information requests in {} bytes", count, in.remaining()));
  }
  ExportRequest request{std::move(*name), {}};
  request.infos.reserve(count);
  for (std::uint64_t i = 0; i < count; i++)
    request.infos.push_back(static_cast<InfoType>(in.take(2)));
  HAST_ASSERT(in.remaining() == 0);
  return request;
}

std::vector<std::byte> encode_export_request(const ExportRequest& request) {
  HAST_ASSERT(request.name.size() <= name_size_max);
  HAST_ASSERT(request.infos.size() <= 0xffff);
  Writer out;
  out.u32(request.name.size());
  out.text(request.name);
  out.u16(request.infos.size());
  for (InfoType info : request.infos)
    out.u16(static_cast<std::uint16_t>(info));
  return out.take();
}

std::vector<std::byte> encode_option_reply(Option option, OptionReply type,
                                           std::span<const std::byte> data) {
  HAST_ASSERT(data.size() <= 0xffffffffu);
  Writer out;
  out.u64(option_reply_magic);
  out.u32(static_cast<std::uint32_t>(option));
  out.u32(static_cast<std::uint32_t>(type));
  out.u32(data.size());
  out.bytes(data);
  return out.take();
}

Result<OptionReplyHeader> decode_option_reply_header(std::span<const std::byte> bytes) {
  HAST_TRY(check_size(bytes, option_reply_header_size, "option reply header"));
  Reader in(bytes);
  std::uint64_t magic = in.take(8);
  if (magic != option_reply_magic) {
    return fail(Errc::corruption, fmt::format("option reply magic {:#018x}", magic));
  }
  OptionReplyHeader header;
  header.option = static_cast<Option>(in.take(4));
  header.type = static_cast<OptionReply>(in.take(4));
  header.length = static_cast<std::uint32_t>(in.take(4));
  return header;
}

std::vector<std::byte> encode_server_entry(std::string_view export_name) {
  HAST_ASSERT(export_name.size() <= name_size_max);
  Writer out;
  out.u32(export_name.size());
  out.text(export_name);
  return out.take();
}

std::vector<std::byte> encode_info_export(std::uint64_t size, std::uint16_t transmission_flags) {
  HAST_ASSERT((transmission_flags & transmission_has_flags) != 0);
  Writer out;
  out.u16(static_cast<std::uint16_t>(InfoType::export_info));
  out.u64(size);
  out.u16(transmission_flags);
  return out.take();
}

std::vector<std::byte> encode_info_name(std::string_view export_name) {
  HAST_ASSERT(export_name.size() <= name_size_max);
  Writer out;
  out.u16(static_cast<std::uint16_t>(InfoType::name));
  out.text(export_name);
  return out.take();
}

std::vector<std::byte> encode_info_block_size(std::uint32_t minimum, std::uint32_t preferred,
                                              std::uint32_t maximum) {
  HAST_ASSERT(minimum > 0 && (minimum & (minimum - 1)) == 0);
  HAST_ASSERT(preferred >= minimum && (preferred & (preferred - 1)) == 0);
  HAST_ASSERT(maximum % minimum == 0);
  Writer out;
  out.u16(static_cast<std::uint16_t>(InfoType::block_size));
  out.u32(minimum);
  out.u32(preferred);
  out.u32(maximum);
  return out.take();
}

std::vector<std::byte> encode_export_name_reply(std::uint64_t size,
                                                std::uint16_t transmission_flags, bool zeroes) {
  HAST_ASSERT((transmission_flags & transmission_has_flags) != 0);
  Writer out;
  out.u64(size);
  out.u16(transmission_flags);
  std::vector<std::byte> bytes = out.take();
  // The padding of the oldstyle era; only clients that set NO_ZEROES go without it.
  if (zeroes) bytes.resize(bytes.size() + export_name_zeroes);
  return bytes;
}

// ---- Transmission ----

Result<RequestHeader> decode_request_header(std::span<const std::byte> bytes) {
  HAST_TRY(check_size(bytes, request_header_size, "request header"));
  Reader in(bytes);
  std::uint64_t magic = in.take(4);
  if (magic != request_magic) {
    return fail(Errc::corruption, fmt::format("request magic {:#010x}", magic));
  }
  RequestHeader header;
  header.flags = static_cast<std::uint16_t>(in.take(2));
  header.command = static_cast<Command>(in.take(2));
  header.handle = in.take(8);
  header.offset = in.take(8);
  header.length = static_cast<std::uint32_t>(in.take(4));
  HAST_ASSERT(in.remaining() == 0);
  return header;
}

std::array<std::byte, request_header_size> encode_request_header(const RequestHeader& header) {
  std::array<std::byte, request_header_size> out{};
  std::span<std::byte> at(out);
  store_be(at, request_magic, 4);
  store_be(at.subspan(4), header.flags, 2);
  store_be(at.subspan(6), static_cast<std::uint16_t>(header.command), 2);
  store_be(at.subspan(8), header.handle, 8);
  store_be(at.subspan(16), header.offset, 8);
  store_be(at.subspan(24), header.length, 4);
  return out;
}

std::array<std::byte, simple_reply_size> encode_simple_reply(const SimpleReply& reply) {
  std::array<std::byte, simple_reply_size> out{};
  store_be(out, simple_reply_magic, 4);
  store_be(std::span(out).subspan(4), static_cast<std::uint32_t>(reply.error), 4);
  store_be(std::span(out).subspan(8), reply.handle, 8);
  return out;
}

Result<SimpleReply> decode_simple_reply(std::span<const std::byte> bytes) {
  HAST_TRY(check_size(bytes, simple_reply_size, "simple reply"));
  Reader in(bytes);
  std::uint64_t magic = in.take(4);
  if (magic != simple_reply_magic) {
    return fail(Errc::corruption, fmt::format("reply magic {:#010x}", magic));
  }
  SimpleReply reply;
  reply.error = static_cast<NbdError>(in.take(4));
  reply.handle = in.take(8);
  return reply;
}

Result<void> validate_request(const RequestHeader& request, const ExportGeometry& geometry) {
  HAST_ASSERT(geometry.block_size_min > 0);
  HAST_ASSERT(geometry.size % geometry.block_size_min == 0);
  std::string_view name = command_name(request.command);
  // FUA is valid on every command once SEND_FUA is advertised; NO_HOLE changes nothing
  // here (zeroes are always written). DF, REQ_ONE and FAST_ZERO were never offered.
  auto unknown_flags = request.flags & ~(command_flag_fua | command_flag_no_hole);
  if (unknown_flags != 0) return invalid(fmt::format("{} with flags {:#x}", name, request.flags));
  switch (request.command) {
    case Command::disc:
    case Command::flush:
      return ok();
    case Command::read:
    case Command::write:
    case Command::trim:
    case Command::write_zeroes:
      break;
    default:
      return invalid(fmt::format("command {} ({}) not supported",
                                 static_cast<std::uint16_t>(request.command), name));
  }
  bool payload = request.command == Command::read || request.command == Command::write;
  if (payload && request.length > geometry.payload_bytes_max) {
    return invalid(fmt::format("{} of {} bytes, over the limit of {}", name, request.length,
                               geometry.payload_bytes_max));
  }
  // The range before the alignment: a write past the end is ENOSPC (proto.md) however it
  // is aligned. Comparing with size - offset cannot wrap, offset + length could.
  if (request.offset > geometry.size || request.length > geometry.size - request.offset) {
    auto range = fmt::format("{} {}+{} past the export's end ({} bytes)", name, request.offset,
                             request.length, geometry.size);
    if (writes_data(request.command)) return fail(Errc::no_space, range);
    return invalid(range);
  }
  if (request.offset % geometry.block_size_min != 0 ||
      request.length % geometry.block_size_min != 0) {
    return invalid(fmt::format("{} {}+{} not aligned to the block size {}", name, request.offset,
                               request.length, geometry.block_size_min));
  }
  return ok();
}

}  // namespace hast::nbd
