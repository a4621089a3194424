// Helpers shared by the SimNetwork tests (sim_network_test.cc, sim_network_fault_test.cc):
// a two-node world (a = 10.0.0.1, b = 10.0.0.2), position-dependent test streams, and a
// way to run one body on both ends of one connection.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "core/prng.h"
#include "sim/node.h"
#include "sim/sim_disk.h"
#include "sim/sim_network.h"
#include "sim/world.h"

namespace hast::sim::net_test {

using namespace std::chrono_literals;

inline constexpr Instant kLimit = Instant{} + 600s;

inline Address tcp(std::string_view text) {
  auto address = hast::parse_address(text, 0);
  REQUIRE(address.has_value());
  return *address;
}

inline SimNode& add_node(World& world, const std::string& name, const std::string& host) {
  auto& disk = world.add_disk(name + "-disk", hast::sim::SimDiskOptions{.size_bytes = 1 << 20});
  auto& node = world.add_node(SimNodeOptions{.name = name, .hosts = {host}});
  node.attach_disk(disk);
  return node;
}

// Byte `index` of test stream `stream`: position-dependent, so a reordered, repeated or
// skipped byte shows.
inline std::byte stream_byte(std::uint64_t stream, std::size_t index) {
  std::uint64_t state = stream * 0x100000000ULL + index;
  return static_cast<std::byte>(hast::splitmix64(state) & 0xff);
}

inline std::vector<std::byte> stream_bytes(std::uint64_t stream, std::size_t from,
                                           std::size_t size) {
  std::vector<std::byte> bytes(size);
  for (std::size_t i = 0; i < size; i++)
    bytes[i] = stream_byte(stream, from + i);
  return bytes;
}

inline bool is_stream_prefix(std::uint64_t stream, const std::vector<std::byte>& bytes) {
  for (std::size_t i = 0; i < bytes.size(); i++) {
    if (bytes[i] != stream_byte(stream, i)) return false;
  }
  return true;
}

inline Deadline in(NodeIo& io, Duration timeout) {
  return hast::deadline_after(io.clock, timeout);
}

inline std::optional<Errc> error_of(const hast::Result<void>& result) {
  if (result) return std::nullopt;
  return result.error().code();
}

// Two nodes, a (10.0.0.1) and b (10.0.0.2), with a network configured by `options`.
struct Pair {
  explicit Pair(std::uint64_t seed, const SimNetworkOptions& options = {}) : world(seed) {
    world.network().configure(options);
    a = &add_node(world, "a", "10.0.0.1");
    b = &add_node(world, "b", "10.0.0.2");
  }
  SimNetwork& net() { return world.network(); }
  bool run(const std::function<bool()>& done) { return world.run_until(done, kLimit); }

  World world;
  SimNode* a = nullptr;
  SimNode* b = nullptr;
};

// Connects a (client) to b (server) and runs `body(io, conn, side)` on both ends.
template <typename Body>
void connect_pair(Pair& pair, Body body, std::uint16_t port = 7000) {
  std::string address = "tcp://10.0.0.2:" + std::to_string(port);
  pair.b->set_program([body, address](NodeIo& io) {
    auto listener = io.network.listen(tcp(address));
    REQUIRE(listener.has_value());
    auto accepted = (*listener)->accept(std::nullopt);
    REQUIRE(accepted.has_value());
    body(io, std::shared_ptr<Connection>(std::move(*accepted)), 1);
  });
  pair.a->set_program([body, address](NodeIo& io) {
    auto connected = io.network.connect(tcp(address), std::nullopt, in(io, 60s));
    REQUIRE(connected.has_value());
    body(io, std::shared_ptr<Connection>(std::move(*connected)), 0);
  });
  pair.b->start();
  pair.a->start();
}

// Runs until both ends of the one connection hold their handles; returns its id.
inline ConnectionId established(Pair& pair) {
  REQUIRE(pair.run([&] {
    return pair.net().counters().accepts == 1 && pair.net().counters().connects_established == 1;
  }));
  auto live = pair.net().live_connections();
  REQUIRE(live.size() == 1);
  return live[0];
}

}  // namespace hast::sim::net_test
