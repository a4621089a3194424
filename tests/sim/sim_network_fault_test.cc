// SimNetwork faults, one test each with exact outcomes and timings: connect refused vs
// timed out, addresses seen by both ends, listen busy, half-open, resets of one side or
// both (with and without a cut path), kill vs power loss of a peer, send back-pressure
// and its deadline, close after in-flight bytes, and a paused node's kernel buffering.
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/sim/sim_network_support.h"

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

TEST_CASE("SimNetwork: connect is refused when nothing listens, times out otherwise", "[sim]") {
  Pair pair(3);
  std::vector<std::pair<std::string, std::optional<Errc>>> results;
  std::vector<Duration> took;
  pair.b->set_program([](NodeIo& io) {
    auto listener = io.network.listen(tcp("tcp://10.0.0.2:7000"));
    REQUIRE(listener.has_value());
    while ((*listener)->accept(std::nullopt)) {
    }
  });
  pair.a->set_program([&](NodeIo& io) {
    auto attempt = [&](const std::string& name, const std::string& remote) {
      Instant start = io.clock.now();
      auto connected = io.network.connect(tcp(remote), std::nullopt, in(io, 3s));
      results.emplace_back(
          name, connected ? std::nullopt : std::optional<Errc>(connected.error().code()));
      took.push_back(io.clock.now() - start);
    };
    attempt("listening", "tcp://10.0.0.2:7000");
    attempt("no listener", "tcp://10.0.0.2:7001");
    attempt("unknown host", "tcp://10.0.0.9:7000");
    pair.net().partition(0, 1);
    attempt("partitioned", "tcp://10.0.0.2:7000");
    // Healed 1.5 s into the attempt: a retried handshake gets through.
    pair.world.after(1500ms, "test.heal", [&] { pair.net().heal(0, 1); });
    attempt("healed in time", "tcp://10.0.0.2:7000");
    pair.world.after(0s, "test.power", [&] { pair.b->power_loss(); });
    REQUIRE(io.scheduler.sleep_for(1ms).has_value());
    attempt("powered off", "tcp://10.0.0.2:7000");
    // Restarted without a listener: its OS refuses.
    pair.b->set_program([](NodeIo&) {});
    pair.world.after(0s, "test.start", [&] { pair.b->start(); });
    REQUIRE(io.scheduler.sleep_for(10ms).has_value());
    attempt("restarted", "tcp://10.0.0.2:7000");
    pair.world.after(0s, "test.kill", [&] { pair.b->kill(); });
    REQUIRE(io.scheduler.sleep_for(1ms).has_value());
    attempt("process killed", "tcp://10.0.0.2:7000");
    auto bad = io.network.connect(tcp("tcp://10.0.0.2:7000"), tcp("tcp://10.0.0.2:1"), in(io, 3s));
    results.emplace_back("foreign source",
                         bad ? std::nullopt : std::optional<Errc>(bad.error().code()));
    took.push_back(0s);
  });
  pair.b->start();
  pair.a->start();
  REQUIRE(pair.run([&] { return results.size() == 9; }));
  using Expect = std::pair<std::string, std::optional<Errc>>;
  CHECK(results == std::vector<Expect>{{"listening", std::nullopt},
                                       {"no listener", Errc::refused},
                                       {"unknown host", Errc::timed_out},
                                       {"partitioned", Errc::timed_out},
                                       {"healed in time", std::nullopt},
                                       {"powered off", Errc::timed_out},
                                       {"restarted", Errc::refused},
                                       {"process killed", Errc::refused},
                                       {"foreign source", Errc::invalid_argument}});
  CHECK(took[1] < 100ms);  // a refusal takes a round trip
  CHECK(took[2] == 3s);    // a timeout takes exactly the deadline
  CHECK(took[3] == 3s);
  CHECK(took[4] > 1500ms);
  CHECK(took[4] < 1600ms + pair.net().options().syn_retry);
  CHECK(took[5] == 3s);
  CHECK(pair.net().counters().connects_refused == 3);
  CHECK(pair.net().counters().connects_timed_out == 3);
}

TEST_CASE("SimNetwork: accepted connections show the connector's address", "[sim]") {
  Pair pair(4);
  std::optional<Address> seen_by_server;
  std::optional<Address> client_local;
  std::optional<Address> client_peer;
  pair.b->set_program([&](NodeIo& io) {
    auto listener = io.network.listen(tcp("tcp://0.0.0.0:7000"));
    REQUIRE(listener.has_value());
    auto accepted = (*listener)->accept(std::nullopt);
    REQUIRE(accepted.has_value());
    seen_by_server = (*accepted)->peer_address();
  });
  pair.a->set_program([&](NodeIo& io) {
    auto connected =
        io.network.connect(tcp("tcp://10.0.0.2:7000"), tcp("tcp://10.0.0.1"), in(io, 3s));
    REQUIRE(connected.has_value());
    client_local = (*connected)->local_address();
    client_peer = (*connected)->peer_address();
  });
  pair.b->start();
  pair.a->start();
  REQUIRE(pair.run([&] { return seen_by_server.has_value() && client_local.has_value(); }));
  CHECK(seen_by_server->host == "10.0.0.1");
  CHECK(seen_by_server->port >= 49152);
  CHECK(*seen_by_server == *client_local);
  CHECK(*client_peer == tcp("tcp://10.0.0.2:7000"));
}

TEST_CASE("SimNetwork: listening twice on one address is busy", "[sim]") {
  Pair pair(5);
  std::vector<std::optional<Errc>> results;
  pair.b->set_program([&](NodeIo& io) {
    auto listen = [&](std::string_view text) {
      auto listener = io.network.listen(tcp(text));
      results.push_back(listener ? std::nullopt : std::optional<Errc>(listener.error().code()));
      return listener;
    };
    auto first = listen("tcp://10.0.0.2:7000");
    auto twice = listen("tcp://10.0.0.2:7000");
    auto wildcard = listen("tcp://0.0.0.0:7000");
    auto other_port = listen("tcp://0.0.0.0:7001");
    auto foreign = listen("tcp://10.0.0.1:7002");
    REQUIRE(first.has_value());
    (*first)->close();
    auto again = listen("tcp://10.0.0.2:7000");
  });
  pair.b->start();
  REQUIRE(pair.run([&] { return results.size() == 6; }));
  CHECK(results == std::vector<std::optional<Errc>>{std::nullopt, Errc::busy, Errc::busy,
                                                    std::nullopt, Errc::invalid_argument,
                                                    std::nullopt});
}

TEST_CASE("SimNetwork: a half-open peer's recv times out at its deadline, nothing else", "[sim]") {
  Pair pair(6);
  std::optional<Errc> client_recv, client_send, server_recv;
  Instant client_recv_start{}, client_recv_end{};
  bool client_done = false, server_done = false;
  connect_pair(pair, [&](NodeIo& io, std::shared_ptr<Connection> conn, int side) {
    std::vector<std::byte> buffer(100);
    if (side == 1) {
      server_recv = error_of(conn->recv_exact(buffer, in(io, 60s)));
      server_done = true;
      return;
    }
    REQUIRE(io.scheduler.sleep_for(100ms).has_value());
    client_send = error_of(conn->send(buffer, in(io, 5s)));
    client_recv_start = pair.world.now();
    client_recv = error_of(conn->recv_exact(buffer, in(io, 5s)));
    client_recv_end = pair.world.now();
    client_done = true;
  });
  ConnectionId id = established(pair);
  pair.net().half_open(id, Side::server);
  REQUIRE(pair.run([&] { return client_done && server_done; }));
  CHECK(server_recv == Errc::disconnected);
  CHECK(client_send == std::nullopt);  // its bytes vanish
  CHECK(client_recv == Errc::timed_out);
  CHECK(client_recv_end == client_recv_start + 5s);
  CHECK(pair.net().counters().bytes_dropped == 100);
  CHECK(pair.net().counters().resets_delivered == 0);
}

TEST_CASE("SimNetwork: a reset side fails at once, its peer after latency", "[sim]") {
  auto options = SimNetworkOptions{};
  options.latency_min = 10ms;
  options.latency_mean = 20ms;
  for (Side side : {Side::server, Side::both}) {
    for (bool cut : {false, true}) {
      CAPTURE(static_cast<int>(side), cut);
      Pair pair(7, options);
      std::optional<Errc> results[2];
      Instant ended[2]{};
      int done = 0;
      connect_pair(pair, [&](NodeIo& io, std::shared_ptr<Connection> conn, int index) {
        std::vector<std::byte> buffer(10);
        results[index] = error_of(conn->recv_exact(buffer, in(io, 10s)));
        ended[index] = pair.world.now();
        done++;
      });
      ConnectionId id = established(pair);
      Instant reset_at = pair.world.now();
      if (cut) pair.net().partition(1, 0);
      pair.net().reset(id, side);
      REQUIRE(pair.run([&] { return done == 2; }));
      CHECK(results[1] == Errc::disconnected);
      CHECK(ended[1] == reset_at);
      if (side == Side::both) {
        CHECK(results[0] == Errc::disconnected);
        CHECK(ended[0] == reset_at);
      } else if (!cut) {
        CHECK(results[0] == Errc::disconnected);
        CHECK(ended[0] >= reset_at + 10ms);
        CHECK(ended[0] < reset_at + 1s);
      } else {
        // The reset segment is held by the cut: the client only sees its deadline.
        CHECK(results[0] == Errc::timed_out);
      }
    }
  }
}

TEST_CASE("SimNetwork: a kill resets the peers, a power loss leaves them half-open", "[sim]") {
  auto options = SimNetworkOptions{};
  options.latency_min = 10ms;
  options.latency_mean = 20ms;
  for (auto death : {hast::sim::DeathKind::kill, hast::sim::DeathKind::power_loss}) {
    CAPTURE(static_cast<int>(death));
    Pair pair(8, options);
    std::optional<Errc> first, after_reboot;
    Instant first_start{}, first_end{};
    bool done = false;
    connect_pair(pair, [&](NodeIo& io, std::shared_ptr<Connection> conn, int side) {
      if (side == 1) {
        std::vector<std::byte> buffer(10);
        hast::ignore_error(conn->recv_exact(buffer, std::nullopt), "killed while waiting");
        return;
      }
      std::vector<std::byte> buffer(10);
      first_start = pair.world.now();
      first = error_of(conn->recv_exact(buffer, in(io, 5s)));
      first_end = pair.world.now();
      // Whatever the peer's state, bytes sent now reach a rebooted OS, which resets.
      REQUIRE(io.scheduler.sleep_for(1s).has_value());
      hast::ignore_error(conn->send(buffer, in(io, 5s)), "fails after a reset");
      after_reboot = error_of(conn->recv_exact(buffer, in(io, 5s)));
      done = true;
    });
    established(pair);
    Instant died_at = pair.world.now();
    if (death == hast::sim::DeathKind::kill) {
      pair.b->kill();
    } else {
      pair.b->power_loss();
    }
    REQUIRE(pair.run([&] { return first.has_value(); }));
    pair.b->set_program([](NodeIo&) {});
    pair.b->start();
    REQUIRE(pair.run([&] { return done; }));
    if (death == hast::sim::DeathKind::kill) {
      CHECK(first == Errc::disconnected);
      CHECK(first_end >= died_at + 10ms);
      CHECK(first_end < died_at + 1s);
    } else {
      CHECK(first == Errc::timed_out);
      CHECK(first_end == first_start + 5s);
      CHECK(after_reboot == Errc::disconnected);
    }
  }
}

TEST_CASE("SimNetwork: send blocks on a full buffer and its deadline fires", "[sim]") {
  SimNetworkOptions options;
  options.send_buffer_bytes = 4096;
  for (bool clogged : {true, false}) {
    CAPTURE(clogged);
    Pair pair(9, options);
    std::optional<Errc> sent;
    Instant send_start{}, send_end{};
    bool done = false;
    connect_pair(pair, [&](NodeIo& io, std::shared_ptr<Connection> conn, int side) {
      std::vector<std::byte> buffer(4 * 4096);
      if (side == 1) {
        while (conn->recv_exact(buffer, std::nullopt)) {
        }
        return;
      }
      send_start = pair.world.now();
      sent = error_of(conn->send(buffer, in(io, 1s)));
      send_end = pair.world.now();
      done = true;
    });
    established(pair);
    if (clogged) pair.net().clog(0, 1, 10s);
    REQUIRE(pair.run([&] { return done; }));
    if (clogged) {
      CHECK(sent == Errc::timed_out);
      CHECK(send_end == send_start + 1s);
      CHECK(pair.net().counters().bytes_sent == 4096);
    } else {
      CHECK(sent == std::nullopt);
      CHECK(send_end < send_start + 1s);
    }
  }
}

TEST_CASE("SimNetwork: close delivers the bytes in flight, then disconnected", "[sim]") {
  Pair pair(10);
  std::optional<Errc> whole, beyond, after;
  bool done = false;
  connect_pair(pair, [&](NodeIo& io, std::shared_ptr<Connection> conn, int side) {
    if (side == 0) {
      auto bytes = stream_bytes(0, 0, 30'000);
      REQUIRE(conn->send(bytes, in(io, 5s)).has_value());
      conn->close();
      CHECK(error_of(conn->send(bytes, in(io, 5s))) == Errc::disconnected);
      return;
    }
    std::vector<std::byte> buffer(20'000);
    whole = error_of(conn->recv_exact(buffer, in(io, 5s)));
    CHECK(is_stream_prefix(0, buffer));
    beyond = error_of(conn->recv_exact(buffer, in(io, 5s)));  // only 10 000 remain
    after = error_of(conn->recv_exact(buffer, in(io, 5s)));
    done = true;
  });
  REQUIRE(pair.run([&] { return done; }));
  CHECK(whole == std::nullopt);
  CHECK(beyond == Errc::disconnected);
  CHECK(after == Errc::disconnected);
}

TEST_CASE("SimNetwork: a paused node's kernel keeps receiving", "[sim]") {
  Pair pair(11);
  Instant read_at{};
  bool done = false;
  connect_pair(pair, [&](NodeIo& io, std::shared_ptr<Connection> conn, int side) {
    std::vector<std::byte> buffer(50'000);
    if (side == 0) {
      REQUIRE(conn->send(buffer, in(io, 5s)).has_value());
      return;
    }
    REQUIRE(conn->recv_exact(buffer, in(io, 60s)).has_value());
    read_at = pair.world.now();
    done = true;
  });
  established(pair);
  Instant paused_at = pair.world.now();
  pair.b->pause(2s);
  pair.world.run_for(1s);
  CHECK(pair.net().counters().bytes_delivered == 50'000);  // in b's kernel buffer
  CHECK_FALSE(done);
  REQUIRE(pair.run([&] { return done; }));
  CHECK(read_at == paused_at + 2s);
}

TEST_CASE("SimNetwork: loopback and unix-socket connections stay on the node", "[sim]") {
  Pair pair(12);
  std::vector<std::string> echoed;
  pair.a->set_program([&](NodeIo& io) {
    for (std::string_view text : {"tcp://0.0.0.0:7100", "unix:///var/run/hastctl"}) {
      auto listener = io.network.listen(tcp(text));
      REQUIRE(listener.has_value());
      std::string target = text.starts_with("tcp") ? "tcp://127.0.0.1:7100" : std::string(text);
      auto connected = io.network.connect(tcp(target), std::nullopt, in(io, 1s));
      REQUIRE(connected.has_value());
      auto accepted = (*listener)->accept(in(io, 1s));
      REQUIRE(accepted.has_value());
      std::vector<std::byte> bytes = stream_bytes(3, 0, 100);
      REQUIRE((*connected)->send(bytes, in(io, 1s)).has_value());
      std::vector<std::byte> got(100);
      REQUIRE((*accepted)->recv_exact(got, in(io, 1s)).has_value());
      CHECK(got == bytes);
      echoed.push_back((*accepted)->local_address().to_string());
    }
    // Nothing listens on b's unix socket from a: unix sockets never leave the node.
    auto remote = io.network.connect(tcp("unix:///var/run/other"), std::nullopt, in(io, 1s));
    CHECK(error_of(remote ? hast::Result<void>() : hast::fail(remote.error())) == Errc::refused);
    echoed.push_back("done");
  });
  pair.a->start();
  REQUIRE(pair.run([&] { return echoed.size() == 3; }));
  CHECK(echoed ==
        std::vector<std::string>{"tcp://127.0.0.1:7100", "unix:///var/run/hastctl", "done"});
}
