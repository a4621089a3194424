// SimNetwork properties: over random latencies, slow tails, bandwidths, buffers, segment
// and send sizes, bytes arrive in order and exactly once and never after a reset; a
// partition stops one direction only and its bytes flow after heal. Then determinism: the
// trace hash depends on the seed only. Per-fault tests: sim_network_fault_test.cc.
#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <rapidcheck.h>
#include <catch2/catch.hpp>

#include "tests/sim/sim_network_support.h"
#include "tests/support/property.h"

using namespace std::chrono_literals;
using namespace hast::sim::net_test;
using hast::Address;
using hast::Connection;
using hast::Duration;
using hast::Errc;
using hast::Instant;
using hast::NodeIo;
using hast::sim::ConnectionId;
using hast::sim::NodeId;
using hast::sim::Side;
using hast::sim::SimNetwork;
using hast::sim::SimNetworkOptions;
using hast::sim::SimNode;
using hast::sim::World;

namespace {

// ---- Property 1: streams ----

struct StreamCase {
  std::uint64_t seed = 1;
  SimNetworkOptions options;
  std::vector<std::size_t> sends[2];    // send sizes of the client (0) and the server (1)
  std::size_t chunk = 1;                // recv_exact size
  std::optional<Duration> reset_after;  // after the connection is established
  Side reset_side = Side::both;
};

struct StreamOutcome {
  std::vector<std::byte> got[2];  // what side i received (stream 1 - i)
  std::optional<Errc> recv_error[2];
  std::optional<Errc> send_error[2];
  int finished = 0;
  bool reset_done = false;
  std::uint64_t delivered_at_reset = 0;
  std::uint64_t delivered_at_end = 0;
};

std::size_t total(const std::vector<std::size_t>& sizes) {
  std::size_t sum = 0;
  for (std::size_t size : sizes)
    sum += size;
  return sum;
}

// One side's traffic: a sender fiber for its stream, and the calling fiber receiving the
// peer's stream in chunks until it has all of it or a call fails.
void run_side(NodeIo& io, std::shared_ptr<Connection> conn, int side, const StreamCase& c,
              StreamOutcome& out) {
  auto spawned = io.scheduler.spawn("sender", [&io, conn, side, &c, &out] {
    std::size_t offset = 0;
    for (std::size_t size : c.sends[side]) {
      auto bytes = stream_bytes(static_cast<std::uint64_t>(side), offset, size);
      auto sent = conn->send(bytes, in(io, 500s));
      if (!sent) {
        out.send_error[side] = sent.error().code();
        break;
      }
      offset += size;
    }
    out.finished++;
  });
  REQUIRE(spawned.has_value());
  std::size_t expected = total(c.sends[1 - side]);
  std::vector<std::byte> buffer;
  while (out.got[side].size() < expected) {
    buffer.resize(std::min(c.chunk, expected - out.got[side].size()));
    auto received = conn->recv_exact(buffer, in(io, 500s));
    if (!received) {
      out.recv_error[side] = received.error().code();
      break;
    }
    out.got[side].insert(out.got[side].end(), buffer.begin(), buffer.end());
  }
  out.finished++;
}

StreamOutcome run_streams(const StreamCase& c) {
  StreamOutcome out;
  Pair pair(c.seed, c.options);
  pair.b->set_program([&](NodeIo& io) {
    auto listener = io.network.listen(tcp("tcp://10.0.0.2:7000"));
    REQUIRE(listener.has_value());
    auto accepted = (*listener)->accept(in(io, 500s));
    REQUIRE(accepted.has_value());
    run_side(io, std::shared_ptr<Connection>(std::move(*accepted)), 1, c, out);
  });
  pair.a->set_program([&](NodeIo& io) {
    auto connected = io.network.connect(tcp("tcp://10.0.0.2:7000"), std::nullopt, in(io, 500s));
    REQUIRE(connected.has_value());
    std::shared_ptr<Connection> conn(std::move(*connected));
    auto id = SimNetwork::connection_id(*conn);
    REQUIRE(id.has_value());
    if (c.reset_after) {
      pair.world.after(*c.reset_after, "test.reset", [&pair, &out, &c, id] {
        out.delivered_at_reset = pair.net().counters().bytes_delivered;
        out.reset_done = true;
        pair.net().reset(*id, c.reset_side);
      });
    }
    run_side(io, conn, 0, c, out);
  });
  pair.b->start();
  pair.a->start();
  pair.run([&] { return out.finished == 4; });
  out.delivered_at_end = pair.net().counters().bytes_delivered;
  return out;
}

SimNetworkOptions random_options() {
  SimNetworkOptions options;
  options.latency_min = std::chrono::microseconds(*rc::gen::inRange(0, 2000));
  options.latency_mean =
      options.latency_min + std::chrono::microseconds(*rc::gen::inRange(0, 5000));
  options.slow_probability = *rc::gen::element(0.0, 0.05, 0.3);
  options.slow_multiplier = *rc::gen::inRange(2, 30);
  options.bandwidth_bytes_per_second =
      *rc::gen::element<std::uint64_t>(0, 100'000, 1'000'000, 100'000'000);
  options.send_buffer_bytes = *rc::gen::inRange<std::size_t>(512, 70'000);
  options.segment_bytes = *rc::gen::inRange<std::size_t>(64, 20'000);
  return options;
}

StreamCase random_stream_case(bool with_reset) {
  StreamCase c;
  c.seed = *rc::gen::inRange<std::uint64_t>(1, 1'000'000);
  c.options = random_options();
  for (auto& sends : c.sends) {
    sends = *rc::gen::container<std::vector<std::size_t>>(*rc::gen::inRange(0, 9),
                                                          rc::gen::inRange<std::size_t>(1, 20'000));
  }
  c.chunk = *rc::gen::element<std::size_t>(1, 7, 100, 1000, 4096, 40'000);
  if (with_reset) {
    c.reset_after = std::chrono::microseconds(*rc::gen::inRange(0, 60'000));
    c.reset_side = *rc::gen::element(Side::client, Side::server, Side::both);
  }
  return c;
}

// ---- Property 2: partitions ----

constexpr std::size_t kMessageBytes = 32;
constexpr std::uint32_t kMessages = 1500;

struct Arrival {
  Instant when;
  std::uint32_t seq;
};

// Each side sends kMessages numbered messages, one per millisecond, and records when each
// of the peer's messages is read (the reader is always waiting, so read = delivered).
void message_side(World& world, NodeIo& io, std::shared_ptr<Connection> conn,
                  std::vector<Arrival>& arrivals, int& finished) {
  auto spawned = io.scheduler.spawn("sender", [&io, conn, &finished] {
    for (std::uint32_t seq = 0; seq < kMessages; seq++) {
      std::vector<std::byte> message(kMessageBytes, std::byte{0});
      for (int i = 0; i < 4; i++)
        message[i] = static_cast<std::byte>(seq >> (8 * i));
      REQUIRE(conn->send(message, in(io, 500s)).has_value());
      REQUIRE(io.scheduler.sleep_for(1ms).has_value());
    }
    finished++;
  });
  REQUIRE(spawned.has_value());
  std::vector<std::byte> message(kMessageBytes);
  for (std::uint32_t i = 0; i < kMessages; i++) {
    REQUIRE(conn->recv_exact(message, in(io, 500s)).has_value());
    std::uint32_t seq = 0;
    for (int b = 0; b < 4; b++)
      seq |= std::to_integer<std::uint32_t>(message[b]) << (8 * b);
    arrivals.push_back(Arrival{world.now(), seq});
  }
  finished++;
}

// ---- Determinism ----

std::string scenario_hash(std::uint64_t seed) {
  World world(seed);
  world.network().configure(SimNetworkOptions::swarm(world.stream("test/options")));
  SimNode& a = add_node(world, "a", "10.0.0.1");
  SimNode& b = add_node(world, "b", "10.0.0.2");
  int rounds = 0;
  b.set_program([](NodeIo& io) {
    auto listener = io.network.listen(tcp("tcp://0.0.0.0:7000"));
    REQUIRE(listener.has_value());
    while (true) {
      auto accepted = (*listener)->accept(std::nullopt);
      if (!accepted) return;
      std::vector<std::byte> buffer(1000);
      while ((*accepted)->recv_exact(buffer, in(io, 5s)) && (*accepted)->send(buffer, in(io, 5s))) {
      }
    }
  });
  a.set_program([&rounds](NodeIo& io) {
    while (true) {
      auto connected = io.network.connect(tcp("tcp://10.0.0.2:7000"), std::nullopt, in(io, 5s));
      rounds++;
      if (!connected) {
        if (!io.scheduler.sleep_for(10ms)) return;
        continue;
      }
      std::vector<std::byte> buffer(1000);
      for (int i = 0; i < 50; i++) {
        hast::fill_random(io.random, buffer);
        if (!(*connected)->send(buffer, in(io, 5s))) break;
        if (!(*connected)->recv_exact(buffer, in(io, 5s))) break;
      }
    }
  });
  b.start();
  a.start();
  world.at(Instant{} + 2s, "test.partition", [&] { world.network().partition(0, 1); });
  world.at(Instant{} + 4s, "test.heal", [&] { world.network().heal_all(); });
  world.at(Instant{} + 6s, "test.kill", [&] { b.kill(); });
  world.at(Instant{} + 7s, "test.start", [&] { b.start(); });
  world.run_for(20s);
  REQUIRE(rounds > 1);
  REQUIRE(world.network().counters().bytes_delivered > 100'000);
  return world.hash().hex();
}

}  // namespace

TEST_CASE("SimNetwork: bytes arrive in order and exactly once", "[sim]") {
  hast::test::property("SimNetwork: streams in order, exactly once", [] {
    StreamCase c = random_stream_case(/*with_reset=*/false);
    StreamOutcome out = run_streams(c);
    RC_ASSERT(out.finished == 4);
    for (int side : {0, 1}) {
      RC_ASSERT(!out.send_error[side].has_value());
      RC_ASSERT(!out.recv_error[side].has_value());
      RC_ASSERT(out.got[side].size() == total(c.sends[1 - side]));
      RC_ASSERT(is_stream_prefix(static_cast<std::uint64_t>(1 - side), out.got[side]));
    }
  });
}

TEST_CASE("SimNetwork: nothing is delivered after a reset", "[sim]") {
  hast::test::property("SimNetwork: nothing delivered after a reset", [] {
    StreamCase c = random_stream_case(/*with_reset=*/true);
    StreamOutcome out = run_streams(c);
    RC_ASSERT(out.finished == 4);
    RC_TAG(out.reset_done ? "reset" : "done before the reset");
    for (int side : {0, 1}) {
      RC_ASSERT(is_stream_prefix(static_cast<std::uint64_t>(1 - side), out.got[side]));
      bool complete = out.got[side].size() == total(c.sends[1 - side]);
      // A receiver either got everything or learnt of the reset (never a timeout).
      RC_ASSERT(complete || out.recv_error[side] == Errc::disconnected);
      RC_ASSERT(!out.send_error[side] || out.send_error[side] == Errc::disconnected);
    }
    if (out.reset_done) RC_ASSERT(out.delivered_at_end == out.delivered_at_reset);
  });
}

TEST_CASE("SimNetwork: a partition holds one direction only and releases it on heal", "[sim]") {
  hast::test::property("SimNetwork: partition one direction", [] {
    std::uint64_t seed = *rc::gen::inRange<std::uint64_t>(1, 1'000'000);
    SimNetworkOptions options;
    options.latency_min = std::chrono::microseconds(*rc::gen::inRange(0, 2000));
    options.latency_mean =
        options.latency_min + std::chrono::microseconds(*rc::gen::inRange(0, 3000));
    Duration cut_at = std::chrono::milliseconds(*rc::gen::inRange(100, 500));
    Duration heal_at = cut_at + std::chrono::milliseconds(*rc::gen::inRange(50, 800));
    int cut_to = *rc::gen::inRange(0, 2);  // the side whose incoming direction is cut
    Pair pair(seed, options);
    std::vector<Arrival> arrivals[2];
    int finished = 0;
    connect_pair(pair, [&](NodeIo& io, std::shared_ptr<Connection> conn, int side) {
      message_side(pair.world, io, std::move(conn), arrivals[side], finished);
    });
    NodeId from = cut_to == 0 ? 1 : 0;
    NodeId to = static_cast<NodeId>(cut_to);
    Instant cut = Instant{} + cut_at;
    Instant heal = Instant{} + heal_at;
    pair.world.at(cut, "test.cut", [&] { pair.net().partition(from, to); });
    pair.world.at(heal, "test.heal", [&] { pair.net().heal(from, to); });
    RC_ASSERT(pair.run([&] { return finished == 4; }));
    for (int side : {0, 1}) {
      RC_ASSERT(arrivals[side].size() == kMessages);
      for (std::uint32_t i = 0; i < kMessages; i++)
        RC_ASSERT(arrivals[side][i].seq == i);
    }
    auto during = [&](int side) {
      return std::count_if(arrivals[side].begin(), arrivals[side].end(),
                           [&](const Arrival& x) { return x.when > cut && x.when < heal; });
    };
    RC_ASSERT(during(cut_to) == 0);
    // The other direction kept flowing: about one message per millisecond of the cut.
    RC_ASSERT(during(1 - cut_to) * 1ms >= (heal - cut) / 2);
    RC_ASSERT(pair.net().counters().segments_held > 0);
  });
}

TEST_CASE("SimNetwork: the trace hash depends on the seed only", "[sim]") {
  std::string first = scenario_hash(42);
  CHECK(scenario_hash(42) == first);
  CHECK(scenario_hash(43) != first);
  CHECK(scenario_hash(44) != first);
}
