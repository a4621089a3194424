// The NBD server on the simulated network: a tiny NBD client written here drives it over
// a Unix socket of a one-node world, and a MemoryBackend stands in for the replication
// core (it takes BlockRequests with next_request(), applies them to bytes in memory after
// a random delay, so completions come back out of order, and completes them).
//
// Covered: the GO, INFO, EXPORT_NAME and LIST handshakes; every command; pipelining and
// splitting at the request limit; malformed handshakes and requests (error replies that
// keep the stream in step, or a closed connection); core errors mapped to NBD errors;
// close() with requests in flight (error replies, never a false success); clients that
// vanish; the client limit; WRITE buffers offered to the core (BlockRequest::owned).
#include <algorithm>
#include <array>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "core/fiber/event.h"
#include "core/fiber/task_group.h"
#include "core/io/byte_buffer.h"
#include "core/nbd/server.h"
#include "sim/node.h"
#include "sim/sim_disk.h"
#include "sim/world.h"

using namespace std::chrono_literals;
using namespace hast::nbd;
using hast::Address;
using hast::BlockOp;
using hast::BlockRequest;
using hast::Connection;
using hast::Errc;
using hast::NodeIo;
using hast::Result;

namespace {

constexpr std::uint64_t kExportSize = 4 << 20;
constexpr std::uint16_t kBothFlags = handshake_fixed_newstyle | handshake_no_zeroes;

Address nbd_address() {
  auto address = hast::parse_address("unix:///run/hast/disk0.nbd", 0);
  REQUIRE(address.has_value());
  return *address;
}

NbdServerOptions server_options() {
  NbdServerOptions options;
  options.address = nbd_address();
  options.export_name = "disk0";
  options.export_size = kExportSize;
  return options;
}

std::vector<std::byte> pattern(std::size_t size, std::uint64_t seed) {
  std::vector<std::byte> out(size);
  std::uint64_t state = seed * 0x9e3779b97f4a7c15ull + 1;
  for (auto& byte : out) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    byte = static_cast<std::byte>(state);
  }
  return out;
}

std::vector<std::byte> be32(std::uint32_t value) {
  return {static_cast<std::byte>(value >> 24), static_cast<std::byte>(value >> 16),
          static_cast<std::byte>(value >> 8), static_cast<std::byte>(value)};
}

std::uint64_t load_be(std::span<const std::byte> bytes) {
  std::uint64_t value = 0;
  for (std::byte b : bytes)
    value = value << 8 | std::to_integer<std::uint64_t>(b);
  return value;
}

bool all_zero(std::span<const std::byte> bytes) {
  return std::all_of(bytes.begin(), bytes.end(), [](std::byte b) { return b == std::byte{0}; });
}

// The replication core's stand-in: storage in memory, requests completed out of order.
class MemoryBackend {
 public:
  MemoryBackend(NodeIo& io, NbdServer& server)
      : data(kExportSize),
        io_(io),
        server_(server),
        workers_(io.scheduler),
        released_(io.scheduler),
        resumed_(io.scheduler) {}

  void start() {
    REQUIRE(workers_.spawn("backend", [this] { loop(); }).has_value());
  }
  // After the server closed: every taken request completes, then the loop ends.
  void stop() {
    release();
    resume();
    workers_.join_all();
  }

  // Taken requests wait in the backend until release().
  void hold() {
    holding_ = true;
    released_.reset();
  }
  void release() {
    holding_ = false;
    released_.set();
  }
  // next_request() is not called until resume(): parts stay queued in the server.
  void pause() {
    paused_ = true;
    resumed_.reset();
  }
  void resume() {
    paused_ = false;
    resumed_.set();
  }

  std::vector<std::byte> data;
  std::vector<BlockRequest> taken;  // in next_request() order
  std::size_t completed = 0;
  std::function<std::optional<Errc>(const BlockRequest&)> fault;
  // Take every buffer offered (BlockRequest::owned) before completing, as the core's async
  // writes do, and keep it here.
  bool take_owned = false;
  std::vector<hast::ByteBuffer> kept;
  std::vector<const std::byte*> kept_at;  // where each part's data was when it was taken

 private:
  void loop() {
    while (true) {
      while (paused_) {
        if (!resumed_.wait()) return;
      }
      auto request = server_.next_request();
      if (!request) {
        CHECK(request.error().code() == Errc::cancelled);
        return;
      }
      taken.push_back(*request);
      REQUIRE(workers_.spawn("backend-op", [this, r = *request] { execute(r); }).has_value());
    }
  }

  void execute(const BlockRequest& request) {
    auto delay = std::chrono::microseconds(hast::uniform(io_.random, 0, 300));
    hast::ignore_error(io_.scheduler.sleep_for(delay), "only the delay is lost");
    while (holding_) {
      if (!released_.wait()) break;
    }
    Result<void> result = apply(request);
    if (take_owned && request.owned != nullptr) {
      REQUIRE(request.op == BlockOp::write);
      REQUIRE(request.owned->data() == request.data.data());
      REQUIRE(request.owned->size() == request.data.size());
      kept_at.push_back(request.data.data());
      kept.push_back(std::move(*request.owned));
      CHECK(request.owned->empty());
    }
    server_.complete(request, std::move(result));
    completed++;
  }

  // Checks the core's preconditions (what LocalComponent asserts), then applies.
  Result<void> apply(const BlockRequest& request) {
    CHECK(request.offset % 512 == 0);
    CHECK(request.length % 512 == 0);
    CHECK(request.offset + request.length <= data.size());
    if (request.op != BlockOp::discard) CHECK(request.length <= server_.options().part_bytes_max);
    if (fault) {
      if (auto error = fault(request)) return hast::fail(*error, "injected");
    }
    auto range = std::span(data).subspan(request.offset, request.length);
    switch (request.op) {
      case BlockOp::read:
        REQUIRE(request.data.size() == request.length);
        std::copy(range.begin(), range.end(), request.data.begin());
        break;
      case BlockOp::write:
        REQUIRE(request.data.size() == request.length);
        std::copy(request.data.begin(), request.data.end(), range.begin());
        break;
      case BlockOp::discard:
      case BlockOp::write_zeroes:
        std::fill(range.begin(), range.end(), std::byte{0});
        break;
      case BlockOp::flush:
        break;
    }
    return hast::ok();
  }

  NodeIo& io_;
  NbdServer& server_;
  hast::fiber::TaskGroup workers_;
  hast::fiber::Event released_;
  hast::fiber::Event resumed_;
  bool holding_ = false;
  bool paused_ = false;
};

struct ExportInfo {
  std::optional<OptionReply> error;  // set when the reply ended with an error
  std::uint64_t size = 0;
  std::uint16_t flags = 0;
  std::uint32_t block_min = 0;
  std::uint32_t block_preferred = 0;
  std::uint32_t block_max = 0;
  std::string name;
};

struct Answer {
  NbdError error = NbdError::none;
  std::uint64_t handle = 0;
  std::vector<std::byte> data;
};

struct OptionAnswer {
  OptionReplyHeader header;
  std::vector<std::byte> data;
};

// A minimal NBD client: fixed newstyle, simple replies, several requests in flight.
class Client {
 public:
  explicit Client(NodeIo& io) : io_(io) {}

  void connect() {
    auto connected = io_.network.connect(nbd_address(), std::nullopt, deadline());
    REQUIRE(connected.has_value());
    connection_ = std::move(*connected);
  }
  // Connects, negotiates with GO and checks the export is served.
  void start(std::string_view name = "disk0") {
    connect();
    CHECK(greeting() == kBothFlags);
    send_flags(client_fixed_newstyle | client_no_zeroes);
    auto info = go(name);
    REQUIRE(!info.error);
  }

  Result<void> send(std::span<const std::byte> bytes) {
    return connection_->send(bytes, deadline());
  }
  std::vector<std::byte> recv(std::size_t size) {
    std::vector<std::byte> bytes(size);
    if (size == 0) return bytes;
    auto received = connection_->recv_exact(bytes, deadline());
    REQUIRE(received.has_value());
    return bytes;
  }
  // True when the server closed the connection (after anything it sent before).
  bool closed_by_server() {
    std::array<std::byte, 1> byte{};
    auto received = connection_->recv_exact(byte, deadline());
    return !received && received.error().code() == Errc::disconnected;
  }
  void close() { connection_->close(); }

  std::uint16_t greeting() {
    auto bytes = recv(greeting_size);
    CHECK(load_be(std::span(bytes).first(8)) == nbd_magic);
    CHECK(load_be(std::span(bytes).subspan(8, 8)) == option_magic);
    return static_cast<std::uint16_t>(load_be(std::span(bytes).subspan(16)));
  }
  void send_flags(std::uint32_t flags) { REQUIRE(send(be32(flags)).has_value()); }

  void option(Option option, std::span<const std::byte> data = {}) {
    auto length = static_cast<std::uint32_t>(data.size());
    REQUIRE(send(encode_option_header(OptionHeader{option, length})).has_value());
    if (!data.empty()) REQUIRE(send(data).has_value());
  }
  OptionAnswer option_reply() {
    auto raw = recv(option_reply_header_size);
    auto header = decode_option_reply_header(raw);
    REQUIRE(header.has_value());
    return OptionAnswer{*header, recv(header->length)};
  }

  // INFO or GO for `name`; reads the replies up to ACK or an error.
  ExportInfo go(std::string_view name, Option which = Option::go,
                std::vector<InfoType> infos = {InfoType::block_size, InfoType::name}) {
    option(which, encode_export_request(ExportRequest{std::string(name), std::move(infos)}));
    ExportInfo info;
    while (true) {
      OptionAnswer answer = option_reply();
      CHECK(answer.header.option == which);
      if (answer.header.type == OptionReply::ack) return info;
      if (answer.header.type != OptionReply::info) {
        info.error = answer.header.type;
        return info;
      }
      parse_info(answer.data, info);
    }
  }

  void request(Command command, std::uint64_t handle, std::uint64_t offset, std::uint32_t length,
               std::uint16_t flags = 0, std::span<const std::byte> payload = {}) {
    REQUIRE(send(encode_request_header(RequestHeader{flags, command, handle, offset, length}))
                .has_value());
    if (!payload.empty()) REQUIRE(send(payload).has_value());
    if (command == Command::read) read_lengths_[handle] = length;
  }
  Answer answer() {
    auto reply = decode_simple_reply(recv(simple_reply_size));
    REQUIRE(reply.has_value());
    Answer answer{reply->error, reply->handle, {}};
    auto read = read_lengths_.find(reply->handle);
    if (read != read_lengths_.end()) {
      if (reply->error == NbdError::none) answer.data = recv(read->second);
      read_lengths_.erase(read);
    }
    return answer;
  }
  Answer call(Command command, std::uint64_t offset, std::uint32_t length, std::uint16_t flags = 0,
              std::span<const std::byte> payload = {}) {
    std::uint64_t handle = next_handle_++;
    request(command, handle, offset, length, flags, payload);
    Answer reply = answer();
    CHECK(reply.handle == handle);
    return reply;
  }
  Answer write(std::uint64_t offset, std::span<const std::byte> data, std::uint16_t flags = 0) {
    return call(Command::write, offset, static_cast<std::uint32_t>(data.size()), flags, data);
  }
  Answer read(std::uint64_t offset, std::uint32_t length) {
    return call(Command::read, offset, length);
  }
  void disconnect() { request(Command::disc, next_handle_++, 0, 0); }

 private:
  hast::Deadline deadline() const { return hast::deadline_after(io_.clock, 120s); }

  static void parse_info(std::span<const std::byte> data, ExportInfo& info) {
    REQUIRE(data.size() >= 2);
    auto type = static_cast<InfoType>(load_be(data.first(2)));
    if (type == InfoType::export_info) {
      REQUIRE(data.size() == 12);
      info.size = load_be(data.subspan(2, 8));
      info.flags = static_cast<std::uint16_t>(load_be(data.subspan(10, 2)));
    } else if (type == InfoType::block_size) {
      REQUIRE(data.size() == 14);
      info.block_min = static_cast<std::uint32_t>(load_be(data.subspan(2, 4)));
      info.block_preferred = static_cast<std::uint32_t>(load_be(data.subspan(6, 4)));
      info.block_max = static_cast<std::uint32_t>(load_be(data.subspan(10, 4)));
    } else if (type == InfoType::name) {
      auto name = data.subspan(2);
      info.name.assign(reinterpret_cast<const char*>(name.data()), name.size());
    }
  }

  NodeIo& io_;
  std::unique_ptr<Connection> connection_;
  std::map<std::uint64_t, std::uint32_t> read_lengths_;
  std::uint64_t next_handle_ = 1;
};

struct Env {
  NodeIo& io;
  NbdServer& server;
  MemoryBackend& backend;

  void sleep(hast::Duration duration) { REQUIRE(io.scheduler.sleep_for(duration).has_value()); }
  // Waits (in virtual time) until `condition` holds.
  void wait_until(const std::function<bool()>& condition) {
    for (int i = 0; i < 100000 && !condition(); i++)
      sleep(100us);
    REQUIRE(condition());
  }
};

// Runs `body` in a one-node world beside a started NbdServer and its MemoryBackend; then
// closes the server (what a role change does), lets the backend finish and checks that
// every part was completed.
void with_server(std::uint64_t seed, const NbdServerOptions& options,
                 const std::function<void(Env&)>& body) {
  hast::sim::World world(seed);
  auto& disk = world.add_disk("disk", hast::sim::SimDiskOptions{.size_bytes = 1 << 20});
  auto& node = world.add_node(hast::sim::SimNodeOptions{.name = "primary", .hosts = {"10.0.0.1"}});
  node.attach_disk(disk);
  bool done = false;
  node.set_program([&](NodeIo& io) {
    NbdServer server(io.scheduler, io.network, io.log, options);
    REQUIRE(server.start().has_value());
    MemoryBackend backend(io, server);
    backend.start();
    Env env{io, server, backend};
    body(env);
    server.close();
    backend.stop();
    CHECK(server.parts_outstanding() == 0);
    CHECK(server.client_count() == 0);
    done = true;
  });
  node.start();
  REQUIRE(world.run_until([&] { return done; }, hast::Instant{} + 24h));
}

std::size_t count_ops(const MemoryBackend& backend, BlockOp op) {
  return static_cast<std::size_t>(
      std::count_if(backend.taken.begin(), backend.taken.end(),
                    [op](const BlockRequest& r) { return r.op == op; }));
}

}  // namespace

TEST_CASE("nbd: GO handshake, then read, write, flush, trim, write zeroes and disconnect",
          "[sim][nbd]") {
  with_server(1, server_options(), [](Env& env) {
    Client client(env.io);
    client.connect();
    CHECK(client.greeting() == kBothFlags);
    client.send_flags(client_fixed_newstyle | client_no_zeroes);
    client.option(Option::structured_reply);  // every real client asks first
    CHECK(client.option_reply().header.type == OptionReply::err_unsup);
    ExportInfo info = client.go("disk0");
    REQUIRE(!info.error);
    CHECK(info.size == kExportSize);
    CHECK(info.flags ==
          (transmission_has_flags | transmission_send_flush | transmission_send_fua |
           transmission_send_trim | transmission_send_write_zeroes | transmission_can_multi_conn));
    CHECK(info.block_min == 512);
    CHECK(info.block_preferred == 4096);
    CHECK(info.block_max == 128 * 1024);
    CHECK(info.name == "disk0");

    auto data = pattern(8192, 1);
    CHECK(client.write(4096, data, command_flag_fua).error == NbdError::none);
    REQUIRE(env.backend.taken.size() == 1);
    CHECK(env.backend.taken[0].op == BlockOp::write);
    CHECK(env.backend.taken[0].fua == hast::Fua::yes);
    CHECK(std::equal(data.begin(), data.end(), env.backend.data.begin() + 4096));
    Answer read = client.read(4096, 8192);
    CHECK(read.error == NbdError::none);
    CHECK(read.data == data);

    CHECK(client.call(Command::flush, 0, 0).error == NbdError::none);
    CHECK(count_ops(env.backend, BlockOp::flush) == 1);
    CHECK(client.call(Command::trim, 4096, 4096).error == NbdError::none);
    CHECK(count_ops(env.backend, BlockOp::discard) == 1);
    CHECK(client.call(Command::write_zeroes, 8192, 4096, command_flag_no_hole).error ==
          NbdError::none);
    CHECK(count_ops(env.backend, BlockOp::write_zeroes) == 1);
    CHECK(all_zero(client.read(4096, 8192).data));
    CHECK(client.read(0, 0).data.empty());  // a zero-length request is answered at once

    client.disconnect();
    CHECK(client.closed_by_server());
    env.wait_until([&] { return env.server.client_count() == 0; });
    CHECK(env.server.stats().clients_accepted == 1);
    CHECK(env.server.stats().protocol_errors == 0);
    CHECK(env.server.stats().requests_rejected == 0);
  });
}

TEST_CASE("nbd: EXPORT_NAME with and without zero padding, the default export, LIST and INFO",
          "[sim][nbd]") {
  with_server(2, server_options(), [](Env& env) {
    Client padded(env.io);
    padded.connect();
    CHECK(padded.greeting() == kBothFlags);
    padded.send_flags(client_fixed_newstyle);  // no NO_ZEROES: 124 zero bytes follow
    padded.option(Option::list);
    OptionAnswer entry = padded.option_reply();
    CHECK(entry.header.type == OptionReply::server);
    CHECK(entry.data == encode_server_entry("disk0"));
    CHECK(padded.option_reply().header.type == OptionReply::ack);
    ExportInfo info = padded.go("", Option::info, {});  // the default export
    REQUIRE(!info.error);
    CHECK(info.size == kExportSize);
    CHECK(info.block_min == 512);  // sent even when not asked
    padded.option(Option::export_name);
    auto reply = padded.recv(export_name_reply_size + export_name_zeroes);
    CHECK(load_be(std::span(reply).first(8)) == kExportSize);
    CHECK((load_be(std::span(reply).subspan(8, 2)) & transmission_send_flush) != 0);
    CHECK(all_zero(std::span(reply).subspan(export_name_reply_size)));
    CHECK(padded.write(0, pattern(512, 2)).error == NbdError::none);

    Client bare(env.io);
    bare.connect();
    CHECK(bare.greeting() == kBothFlags);
    bare.send_flags(client_fixed_newstyle | client_no_zeroes);
    auto name = std::string_view("disk0");
    bare.option(Option::export_name, std::as_bytes(std::span(name.data(), name.size())));
    CHECK(load_be(bare.recv(8)) == kExportSize);
    bare.recv(2);
    // No padding: the next bytes are the reply to this read.
    CHECK(bare.read(0, 512).data == pattern(512, 2));
  });
}

TEST_CASE("nbd: pipelined requests are answered by handle, and long ones are split at the limit",
          "[sim][nbd]") {
  NbdServerOptions options = server_options();
  options.trim_part_bytes_max = 1 << 20;
  with_server(3, options, [](Env& env) {
    Client client(env.io);
    client.start();
    std::vector<std::byte> model(kExportSize);
    // Sixteen writes in flight at once, some over the 128 KiB limit.
    std::map<std::uint64_t, std::vector<std::byte>> writes;
    for (std::uint64_t i = 0; i < 16; i++) {
      std::size_t size = (i % 4 == 0) ? 256 * 1024 : 4096 * (i + 1);
      writes[100 + i] = pattern(size, 10 + i);
      std::uint64_t offset = i * 256 * 1024;
      client.request(Command::write, 100 + i, offset, static_cast<std::uint32_t>(size), 0,
                     writes[100 + i]);
      std::copy(writes[100 + i].begin(), writes[100 + i].end(), model.begin() + offset);
    }
    std::vector<std::uint64_t> order;
    for (int i = 0; i < 16; i++) {
      Answer answer = client.answer();
      CHECK(answer.error == NbdError::none);
      order.push_back(answer.handle);
    }
    std::vector<std::uint64_t> sorted = order;
    std::sort(sorted.begin(), sorted.end());
    CHECK(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end());
    CHECK(sorted.front() == 100);
    CHECK(sorted.back() == 115);
    CHECK(order != sorted);  // the random backend delays reorder the replies
    CHECK(env.backend.data == model);
    CHECK(env.server.stats().parts == 16 + 4);  // the 256 KiB writes went in two parts

    // Reads of the whole export, pipelined, also split.
    for (std::uint64_t i = 0; i < 4; i++)
      client.request(Command::read, 200 + i, i << 20, 1 << 20);
    for (int i = 0; i < 4; i++) {
      Answer answer = client.answer();
      REQUIRE(answer.error == NbdError::none);
      std::uint64_t offset = (answer.handle - 200) << 20;
      CHECK(std::equal(answer.data.begin(), answer.data.end(), model.begin() + offset));
    }
    // A TRIM of the whole export goes in trim_part_bytes_max parts; FUA adds a flush.
    std::size_t discards = count_ops(env.backend, BlockOp::discard);
    std::size_t flushes = count_ops(env.backend, BlockOp::flush);
    CHECK(client.call(Command::trim, 0, kExportSize, command_flag_fua).error == NbdError::none);
    CHECK(count_ops(env.backend, BlockOp::discard) == discards + 4);
    CHECK(count_ops(env.backend, BlockOp::flush) == flushes + 1);
    CHECK(all_zero(env.backend.data));
  });
}

TEST_CASE("nbd: a WRITE in one part offers its buffer to the core; split ones and reads do not",
          "[sim][nbd]") {
  // The backend takes every offered buffer before it completes the part (what the core's
  // async writes do) and keeps it past the reply: the bytes it holds must still be the
  // client's, in the storage the part pointed to (no copy), while the server goes on with
  // the next requests. A WRITE split into parts (256 KiB over the 128 KiB limit) offers
  // nothing: its parts are slices of one buffer.
  with_server(11, server_options(), [](Env& env) {
    env.backend.take_owned = true;
    Client client(env.io);
    client.start();
    auto small = pattern(64 * 1024, 21);
    CHECK(client.write(0, small).error == NbdError::none);
    REQUIRE(env.backend.taken.size() == 1);
    CHECK(env.backend.taken[0].owned != nullptr);
    REQUIRE(env.backend.kept.size() == 1);
    auto large = pattern(256 * 1024, 22);
    CHECK(client.write(1 << 20, large).error == NbdError::none);
    REQUIRE(env.backend.taken.size() == 3);
    CHECK(env.backend.taken[1].owned == nullptr);
    CHECK(env.backend.taken[2].owned == nullptr);
    CHECK(client.read(1 << 20, 256 * 1024).data == large);
    CHECK(env.backend.taken[3].owned == nullptr);  // the read's part
    auto again = pattern(4096, 23);
    CHECK(client.write(8192, again, command_flag_fua).error == NbdError::none);
    CHECK(env.backend.taken.back().owned != nullptr);  // FUA or not
    REQUIRE(env.backend.kept.size() == 2);
    CHECK(client.read(0, 4096).data == std::vector<std::byte>(small.begin(), small.begin() + 4096));
    // What the backend kept is the clients' bytes, where the parts pointed.
    CHECK(env.backend.kept[0].data() == env.backend.kept_at[0]);
    CHECK(std::equal(small.begin(), small.end(), env.backend.kept[0].begin(),
                     env.backend.kept[0].end()));
    CHECK(env.backend.kept[1].data() == env.backend.kept_at[1]);
    CHECK(std::equal(again.begin(), again.end(), env.backend.kept[1].begin(),
                     env.backend.kept[1].end()));
    CHECK(env.server.stats().requests_failed == 0);
  });
}

TEST_CASE("nbd: malformed handshakes are answered with an error or closed", "[sim][nbd]") {
  with_server(4, server_options(), [](Env& env) {
    {  // a client flag the server did not offer
      Client client(env.io);
      client.connect();
      client.greeting();
      client.send_flags(client_fixed_newstyle | 4);
      CHECK(client.closed_by_server());
    }
    {  // a bad option magic
      Client client(env.io);
      client.connect();
      client.greeting();
      client.send_flags(client_fixed_newstyle);
      auto header = encode_option_header(OptionHeader{Option::go, 0});
      header[0] = std::byte{'X'};
      REQUIRE(client.send(header).has_value());
      CHECK(client.closed_by_server());
    }
    {  // errors that keep the session: unknown option, unknown export, bad data
      Client client(env.io);
      client.connect();
      client.greeting();
      client.send_flags(client_fixed_newstyle | client_no_zeroes);
      client.option(static_cast<Option>(42), be32(7));
      CHECK(client.option_reply().header.type == OptionReply::err_unsup);
      CHECK(client.go("disk1").error == OptionReply::err_unknown);
      client.option(Option::go, be32(9));  // a name longer than the data
      CHECK(client.option_reply().header.type == OptionReply::err_invalid);
      client.option(Option::list, be32(0));
      CHECK(client.option_reply().header.type == OptionReply::err_invalid);
      REQUIRE(!client.go("disk0").error);
      CHECK(client.write(0, pattern(512, 4)).error == NbdError::none);
    }
    {  // ABORT is acknowledged, then the connection ends
      Client client(env.io);
      client.connect();
      client.greeting();
      client.send_flags(client_fixed_newstyle);
      client.option(Option::abort);
      CHECK(client.option_reply().header.type == OptionReply::ack);
      CHECK(client.closed_by_server());
    }
    {  // EXPORT_NAME cannot answer an error: an unknown name closes
      Client client(env.io);
      client.connect();
      client.greeting();
      client.send_flags(client_fixed_newstyle);
      auto name = std::string_view("nope");
      client.option(Option::export_name, std::as_bytes(std::span(name.data(), name.size())));
      CHECK(client.closed_by_server());
    }
    {  // option data over the limit
      Client client(env.io);
      client.connect();
      client.greeting();
      client.send_flags(client_fixed_newstyle);
      REQUIRE(client.send(encode_option_header(OptionHeader{Option::info, 1 << 20})).has_value());
      CHECK(client.closed_by_server());
    }
    {  // a client that never finishes the handshake is closed after handshake_timeout
      Client client(env.io);
      client.connect();
      client.greeting();
      auto before = env.io.clock.now();
      CHECK(client.closed_by_server());
      CHECK(env.io.clock.now() - before >= env.server.options().handshake_timeout);
    }
    env.wait_until([&] { return env.server.client_count() == 0; });
    CHECK(env.server.stats().protocol_errors == 4);
    CHECK(env.backend.taken.size() == 1);
  });
}

TEST_CASE("nbd: bad requests get error replies and the stream stays in step", "[sim][nbd]") {
  with_server(5, server_options(), [](Env& env) {
    Client client(env.io);
    client.start();
    CHECK(client.read(kExportSize, 512).error == NbdError::inval);         // past the end
    CHECK(client.read(kExportSize - 512, 1024).error == NbdError::inval);  // runs past it
    CHECK(client.write(kExportSize - 512, pattern(1024, 5)).error == NbdError::nospc);
    CHECK(client.write(100, pattern(512, 5)).error == NbdError::inval);  // unaligned
    CHECK(client.call(Command::trim, kExportSize, 512).error == NbdError::inval);
    CHECK(client.call(Command::write_zeroes, kExportSize, 512).error == NbdError::nospc);
    CHECK(client.call(Command::cache, 0, 512).error == NbdError::inval);
    CHECK(client.call(static_cast<Command>(42), 0, 512).error == NbdError::inval);
    CHECK(client.call(Command::read, 0, 512, command_flag_df).error == NbdError::inval);
    CHECK(env.backend.taken.empty());
    CHECK(env.server.stats().requests_rejected == 9);
    // The rejected writes' payloads were read: the next request is understood.
    auto data = pattern(4096, 6);
    CHECK(client.write(8192, data).error == NbdError::none);
    CHECK(client.read(8192, 4096).data == data);

    // A WRITE whose payload is over the hard limit: error reply, then the client is closed.
    client.request(Command::write, 77, 0, (32 << 20) + 512);
    Answer answer = client.answer();
    CHECK(answer.handle == 77);
    CHECK(answer.error == NbdError::inval);
    CHECK(client.closed_by_server());

    Client garbled(env.io);
    garbled.start();
    auto header = encode_request_header(RequestHeader{0, Command::read, 1, 0, 512});
    header[0] = std::byte{0};
    REQUIRE(garbled.send(header).has_value());
    CHECK(garbled.closed_by_server());
    env.wait_until([&] { return env.server.client_count() == 0; });
    CHECK(env.server.stats().protocol_errors == 2);
  });
}

TEST_CASE("nbd: core errors become NBD errors, and a split request fails with its first error",
          "[sim][nbd]") {
  with_server(6, server_options(), [](Env& env) {
    Client client(env.io);
    client.start();
    std::map<std::uint64_t, Errc> faults = {{0, Errc::io},
                                            {1 << 20, Errc::no_space},
                                            {2 << 20, Errc::invalid_argument},
                                            {3 << 20, Errc::cancelled},
                                            {(3 << 20) + (512 << 10), Errc::split_brain}};
    env.backend.fault = [&](const BlockRequest& request) -> std::optional<Errc> {
      auto found = faults.find(request.offset);
      if (found == faults.end() || request.op == BlockOp::flush) return std::nullopt;
      return found->second;
    };
    CHECK(client.write(0, pattern(4096, 7)).error == NbdError::io);
    CHECK(client.read(1 << 20, 4096).error == NbdError::nospc);
    CHECK(client.call(Command::trim, 2 << 20, 4096).error == NbdError::inval);
    CHECK(client.call(Command::write_zeroes, 3 << 20, 4096).error == NbdError::shutdown);
    // 512 KiB in four parts; only the third fails.
    std::size_t parts = env.server.stats().parts;
    CHECK(client.write((3 << 20) + (256 << 10), pattern(512 << 10, 8)).error == NbdError::perm);
    CHECK(env.server.stats().parts == parts + 4);
    // A failed READ carries no data: the next reply is in step.
    CHECK(client.read(0, 4096).error == NbdError::io);
    CHECK(client.read(4096, 4096).error == NbdError::none);
    CHECK(env.server.stats().requests_failed == 6);
  });
}

TEST_CASE("nbd: close() answers every request in flight with an error and closes every client",
          "[sim][nbd]") {
  with_server(7, server_options(), [](Env& env) {
    Client first(env.io);
    first.start();
    Client second(env.io);
    second.start();
    env.backend.hold();
    first.request(Command::write, 1, 0, 4096, 0, pattern(4096, 9));
    second.request(Command::flush, 2, 0, 0);
    env.wait_until([&] { return env.backend.taken.size() == 2; });
    // The backend is already waiting in next_request(): it takes one more, then stops.
    env.backend.pause();
    first.request(Command::read, 3, 0, 4096);
    env.wait_until([&] { return env.backend.taken.size() == 3; });
    first.request(Command::write, 4, 1 << 20, 256 * 1024, 0, pattern(256 * 1024, 10));
    env.sleep(10ms);
    CHECK(env.server.parts_outstanding() == 5);  // three in the core, two queued

    env.server.close();
    CHECK(env.server.client_count() == 0);
    CHECK(env.server.parts_outstanding() == 3);  // the queued parts failed
    auto next = env.server.next_request();
    REQUIRE(!next);
    CHECK(next.error().code() == Errc::cancelled);
    std::set<std::uint64_t> answered;
    for (int i = 0; i < 3; i++) {
      Answer answer = first.answer();
      CHECK(answer.error == NbdError::shutdown);  // never a false success
      answered.insert(answer.handle);
    }
    CHECK(answered == std::set<std::uint64_t>{1, 3, 4});
    CHECK(first.closed_by_server());
    CHECK(second.answer().error == NbdError::shutdown);
    CHECK(second.closed_by_server());
    // The listener is closed too.
    auto again = env.io.network.connect(nbd_address(), std::nullopt,
                                        hast::deadline_after(env.io.clock, 10s));
    CHECK(!again.has_value());
    // The core completes what it held after the close: accepted, dropped.
    env.backend.release();
    env.wait_until([&] { return env.server.parts_outstanding() == 0; });
    CHECK(env.backend.completed == 3);
  });
}

TEST_CASE("nbd: a client that vanishes with requests in flight, and the client limit",
          "[sim][nbd]") {
  NbdServerOptions options = server_options();
  options.clients_max = 1;
  with_server(8, options, [](Env& env) {
    Client leaving(env.io);
    leaving.start();
    env.backend.hold();
    leaving.request(Command::write, 1, 0, 4096, 0, pattern(4096, 11));
    env.wait_until([&] { return env.backend.taken.size() == 1; });
    Client refused(env.io);
    refused.connect();
    CHECK(refused.closed_by_server());  // one client at most
    CHECK(env.server.stats().clients_refused == 1);
    leaving.close();
    env.wait_until([&] { return env.server.client_count() == 0; });
    CHECK(env.server.parts_outstanding() == 1);  // its buffer lives until complete()
    env.backend.release();
    env.wait_until([&] { return env.server.parts_outstanding() == 0; });
    CHECK(env.backend.data[0] == pattern(4096, 11)[0]);

    Client next(env.io);
    next.start();
    CHECK(next.read(0, 4096).data == pattern(4096, 11));
    next.disconnect();
    CHECK(next.closed_by_server());
  });
}

TEST_CASE("nbd: several clients share the export, and DISC waits for the requests before it",
          "[sim][nbd]") {
  with_server(9, server_options(), [](Env& env) {
    Client a(env.io);
    Client b(env.io);
    a.start();
    b.start();
    auto left = pattern(64 * 1024, 12);
    auto right = pattern(64 * 1024, 13);
    a.request(Command::write, 1, 0, 64 * 1024, 0, left);
    b.request(Command::write, 1, 64 * 1024, 64 * 1024, 0, right);
    CHECK(a.answer().error == NbdError::none);
    CHECK(b.answer().error == NbdError::none);
    CHECK(a.call(Command::flush, 0, 0).error == NbdError::none);
    CHECK(b.read(0, 64 * 1024).data == left);
    CHECK(a.read(64 * 1024, 64 * 1024).data == right);
    // DISC right behind a write: the write is still answered, then the connection ends.
    auto last = pattern(4096, 14);
    a.request(Command::write, 9, 1 << 20, 4096, 0, last);
    a.disconnect();
    Answer answer = a.answer();
    CHECK(answer.handle == 9);
    CHECK(answer.error == NbdError::none);
    CHECK(a.closed_by_server());
    CHECK(b.read(1 << 20, 4096).data == last);
  });
}

TEST_CASE("nbd: a node that dies while serving unwinds without completing anything", "[sim][nbd]") {
  hast::sim::World world(10);
  auto& disk = world.add_disk("disk", hast::sim::SimDiskOptions{.size_bytes = 1 << 20});
  auto& node = world.add_node(hast::sim::SimNodeOptions{.name = "primary", .hosts = {"10.0.0.1"}});
  node.attach_disk(disk);
  std::size_t taken = 0;
  node.set_program([&](NodeIo& io) {
    NbdServer server(io.scheduler, io.network, io.log, server_options());
    REQUIRE(server.start().has_value());
    MemoryBackend backend(io, server);
    backend.start();
    backend.hold();
    Client client(io);
    client.start();
    client.request(Command::write, 1, 0, 256 * 1024, 0, pattern(256 * 1024, 15));
    client.request(Command::read, 2, 0, 4096);
    Env env{io, server, backend};
    env.wait_until([&] { return backend.taken.size() == 3; });
    taken = backend.taken.size();
    hast::ignore_error(io.scheduler.sleep_for(1h), "the node dies first");
  });
  node.start();
  world.run_for(1s);
  CHECK(taken == 3);
  node.kill();
  CHECK(!node.running());
  world.run_for(1s);
}
