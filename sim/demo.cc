// The runtime smoke demo (see demo.h). The "protocol" here is deliberately tiny, just
// enough to exercise the runtime: a frame is [offset u64][length u32][zero u32][data],
// the reply is [offset u64]; the receiver writes with FUA before replying, so an
// acknowledged block survives even a power loss.
#include "sim/demo.h"

#include <array>
#include <cstdio>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "core/io/node_io.h"
#include "sim/node.h"
#include "sim/sim_disk.h"
#include "sim/sim_network.h"
#include "sim/world.h"

namespace hast::sim {
namespace {

using namespace std::chrono_literals;

constexpr std::uint32_t kBlockBytes = 4096;
constexpr std::uint16_t kPort = 8457;

struct Frame {
  std::uint64_t offset = 0;
  std::uint32_t length = 0;
};

std::array<std::byte, 16> encode_header(Frame frame) {
  std::array<std::byte, 16> bytes{};
  std::memcpy(bytes.data(), &frame.offset, 8);
  std::memcpy(bytes.data() + 8, &frame.length, 4);
  return bytes;
}

Frame decode_header(const std::array<std::byte, 16>& bytes) {
  Frame frame;
  std::memcpy(&frame.offset, bytes.data(), 8);
  std::memcpy(&frame.length, bytes.data() + 8, 4);
  return frame;
}

std::vector<std::byte> block_data(std::uint64_t seed, std::uint32_t index) {
  std::vector<std::byte> data(kBlockBytes);
  Prng random(derive_seed(seed, fmt::format("block/{}", index)));
  fill_random(random, data);
  return data;
}

Address must_parse(std::string_view text) {
  auto address = parse_address(text, kPort);
  HAST_ASSERT(address.has_value());
  return *address;
}

// Receives frames on one connection, writes them durably, acknowledges each.
Result<void> serve_connection(NodeIo& io, Connection& connection, std::uint32_t& received) {
  std::vector<std::byte> data;
  while (true) {
    std::array<std::byte, 16> header{};
    HAST_TRY(connection.recv_exact(header, std::nullopt));
    Frame frame = decode_header(header);
    if (frame.length != kBlockBytes || frame.offset % kBlockBytes != 0 ||
        frame.offset + frame.length > io.disk.size()) {
      return fail(Errc::corruption, fmt::format("bad frame at offset {}", frame.offset));
    }
    data.resize(frame.length);
    HAST_TRY(connection.recv_exact(data, std::nullopt));
    HAST_TRY(io.disk.write(frame.offset, data, Fua::yes));
    std::array<std::byte, 8> ack{};
    std::memcpy(ack.data(), &frame.offset, 8);
    HAST_TRY(connection.send(ack, std::nullopt));
    received++;
  }
}

void receiver_program(NodeIo& io) {
  auto listener = io.network.listen(must_parse("tcp://10.0.0.2"));
  HAST_ASSERT(listener.has_value());
  log_info(io.log, "listening on {}", (*listener)->address().to_string());
  while (true) {
    auto connection = (*listener)->accept(std::nullopt);
    if (!connection) return;  // the node is dying
    log_info(io.log, "accepted a connection from {}", (*connection)->peer_address().host);
    std::uint32_t received = 0;
    auto served = serve_connection(io, **connection, received);
    log_info(io.log, "connection ended after {} blocks: {}", received,
             served ? "closed" : served.error().message());
    (*connection)->close();
  }
}

struct SenderState {
  std::uint64_t seed = 0;
  std::uint32_t block_count = 0;
  std::uint32_t acknowledged = 0;
  std::uint32_t reconnects = 0;
  bool done = false;
};

// Sends blocks from `state.acknowledged` on until the connection fails or all are sent.
Result<void> send_blocks(NodeIo& io, Connection& connection, SenderState& state) {
  while (state.acknowledged < state.block_count) {
    std::uint32_t index = state.acknowledged;
    auto data = block_data(state.seed, index);
    std::uint64_t offset = std::uint64_t{index} * kBlockBytes;
    HAST_TRY(io.disk.write(offset, data, Fua::no));
    HAST_TRY(connection.send(encode_header(Frame{offset, kBlockBytes}), std::nullopt));
    HAST_TRY(connection.send(data, std::nullopt));
    std::array<std::byte, 8> ack{};
    HAST_TRY(connection.recv_exact(ack, deadline_after(io.clock, 2s)));
    state.acknowledged++;
    if (state.acknowledged % 16 == 0)
      log_info(io.log, "{} blocks acknowledged", state.acknowledged);
    HAST_TRY(io.scheduler.sleep_for(50ms));
  }
  return ok();
}

void sender_program(NodeIo& io, SenderState& state) {
  Address remote = must_parse("tcp://10.0.0.2");
  Address source = must_parse("tcp://10.0.0.1");
  while (state.acknowledged < state.block_count) {
    auto connection = io.network.connect(remote, source, deadline_after(io.clock, 1s));
    if (!connection) {
      log_info(io.log, "{}; retrying in 500ms", connection.error().message());
      if (!io.scheduler.sleep_for(500ms)) return;
      continue;
    }
    log_info(io.log, "connected to {}, resuming at block {}", remote.to_string(),
             state.acknowledged);
    auto sent = send_blocks(io, **connection, state);
    (*connection)->close();
    if (!sent) {
      log_info(io.log, "replication interrupted at block {}: {}", state.acknowledged,
               sent.error().message());
      state.reconnects++;
    }
  }
  if (!io.disk.flush()) log_info(io.log, "final flush failed");
  log_info(io.log, "all {} blocks replicated", state.block_count);
  state.done = true;
}

bool replicas_identical(SimDisk& a, SimDisk& b, std::uint32_t block_count) {
  std::vector<std::byte> left(kBlockBytes), right(kBlockBytes);
  for (std::uint32_t i = 0; i < block_count; i++) {
    a.peek_current(std::uint64_t{i} * kBlockBytes, left);
    b.peek_current(std::uint64_t{i} * kBlockBytes, right);
    if (left != right) return false;
  }
  return true;
}

void announce(World& world, bool print, std::string_view what) {
  world.trace_text("operator", what);
  if (print)
    std::printf("%s world: %s\n", format_instant(world.now()).c_str(), std::string(what).c_str());
}

}  // namespace

DemoResult run_demo(const DemoOptions& options) {
  World world(options.seed, WorldOptions{fmt::format("hast-sim demo --seed {}", options.seed),
                                         false, options.print});
  SimDiskOptions disk_options;
  disk_options.size_bytes = 16 << 20;
  SimDisk& disk_a = world.add_disk("hasta-disk", disk_options);
  SimDisk& disk_b = world.add_disk("hastb-disk", disk_options);
  SimNode& a = world.add_node(SimNodeOptions{.name = "hasta", .hosts = {"10.0.0.1"}});
  SimNode& b = world.add_node(SimNodeOptions{.name = "hastb", .hosts = {"10.0.0.2"}});
  a.attach_disk(disk_a);
  b.attach_disk(disk_b);
  SenderState state{options.seed, options.block_count};
  a.set_program([&state](NodeIo& io) { sender_program(io, state); });
  b.set_program(receiver_program);
  announce(world, options.print, "start hastb (receiver) and hasta (sender)");
  b.start();
  a.start();

  world.at(Instant{} + 1200ms, "operator.crash", [&] {
    announce(world, options.print, options.power_loss ? "power loss on hastb" : "kill -9 hastb");
    options.power_loss ? b.power_loss() : b.kill();
  });
  world.at(Instant{} + 2500ms, "operator.restart", [&] {
    announce(world, options.print, "restart hastb");
    b.start();
  });
  bool finished = world.run_until([&] { return state.done; }, Instant{} + 600s);
  HAST_ASSERT_MSG(finished, "demo did not finish: {}", world.summary());

  DemoResult result;
  result.blocks_acknowledged = state.acknowledged;
  result.reconnects = state.reconnects;
  result.replicas_identical = replicas_identical(disk_a, disk_b, options.block_count);
  result.summary = world.summary();
  result.hash = world.hash().hex();
  result.events = world.event_count();
  result.simulated_seconds = std::chrono::duration<double>(world.now().time_since_epoch()).count();
  announce(world, options.print,
           fmt::format("done: {} blocks, {} reconnects, replicas {}", state.acknowledged,
                       state.reconnects, result.replicas_identical ? "identical" : "DIFFER"));
  return result;
}

}  // namespace hast::sim
