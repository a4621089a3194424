// RealNetwork on loopback only (127.0.0.1, 127.0.0.2, ::1 and Unix sockets in a private
// temporary directory): round trips, canonical addresses, the errors of the Network
// contract (refused, timed_out, busy, disconnected, cancelled), close() waking blocked
// calls on other fibers, and no descriptor leaked or inheritable across exec. A TCP
// address written without a port ("tcp://127.0.0.1") parses to port 0: an ephemeral port.
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "real/clock.h"
#include "real/net.h"
#include "real/net_socket.h"
#include "real/ring.h"
#include "tests/support/real_loop.h"

namespace hast::real {
namespace {

using namespace std::chrono_literals;

struct Loop : test::RealLoop {
  RealNetwork network{ring};
};

Address address(std::string_view text) {
  auto parsed = parse_address(text, 0);
  REQUIRE(parsed);
  return *parsed;
}

std::set<int> open_fds() {
  std::set<int> fds;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd"))
    fds.insert(std::stoi(entry.path().filename().string()));
  return fds;
}

// Checks, at the end of a scope, that every descriptor opened in it was closed.
struct FdLeakCheck {
  std::size_t before = open_fds().size();
  ~FdLeakCheck() { CHECK(open_fds().size() == before); }
};

// A private directory for Unix socket files; removed (it must be empty) at the end.
struct TempDir {
  std::string path;
  TempDir() {
    char pattern[] = "/tmp/hast-net-test-XXXXXX";
    REQUIRE(::mkdtemp(pattern) != nullptr);
    path = pattern;
  }
  ~TempDir() { CHECK(std::filesystem::remove(path)); }
  std::string file(std::string_view name) const { return path + "/" + std::string(name); }
};

bool exists(const std::string& path) {
  struct stat status {};
  return ::lstat(path.c_str(), &status) == 0;
}

std::vector<std::byte> pattern_bytes(std::size_t size, unsigned seed) {
  std::vector<std::byte> bytes(size);
  for (std::size_t i = 0; i < size; i++)
    bytes[i] = static_cast<std::byte>((i * 131 + seed) % 251);
  return bytes;
}

struct Pair {
  std::unique_ptr<Listener> listener;
  std::unique_ptr<Connection> client;
  std::unique_ptr<Connection> server;
};

// Listens on `where`, connects to the listener's reported address and accepts. In a fiber.
Pair open_pair(Loop& loop, const Address& where, std::optional<Address> source = {}) {
  Pair pair;
  auto listener = loop.network.listen(where);
  REQUIRE(listener);
  pair.listener = std::move(*listener);
  auto client = loop.network.connect(pair.listener->address(), source, loop.after(5s));
  REQUIRE(client);
  pair.client = std::move(*client);
  auto server = pair.listener->accept(loop.after(5s));
  REQUIRE(server);
  pair.server = std::move(*server);
  return pair;
}

// Sends a short message each way and checks it arrives.
void round_trip(Loop& loop, Pair& pair) {
  auto ping = pattern_bytes(100, 1);
  std::vector<std::byte> got(ping.size());
  REQUIRE(pair.client->send(ping, loop.after(5s)));
  REQUIRE(pair.server->recv_exact(got, loop.after(5s)));
  CHECK(got == ping);
  REQUIRE(pair.server->send(ping, loop.after(5s)));
  REQUIRE(pair.client->recv_exact(got, loop.after(5s)));
  CHECK(got == ping);
}

TEST_CASE("RealNetwork: 1 MiB echoed while it is sent (TCP, 127.0.0.1)", "[real][net]") {
  FdLeakCheck leaks;
  Loop loop;
  constexpr std::size_t total = 1 << 20;
  constexpr std::size_t chunk = 64 * 1024;
  auto message = pattern_bytes(total, 7);
  std::vector<std::byte> echoed(total);
  Pair pair;
  loop.spawn("setup", [&] {
    pair = open_pair(loop, address("tcp://127.0.0.1"));
    Address bound = pair.listener->address();
    CHECK(bound.kind == Address::Kind::tcp);
    CHECK(bound.host == "127.0.0.1");
    CHECK(bound.port != 0);
    CHECK(pair.client->peer_address() == bound);
    CHECK(pair.server->local_address() == bound);
    CHECK(pair.client->local_address() == pair.server->peer_address());
    loop.spawn("echo", [&] {
      std::vector<std::byte> buffer(chunk);
      for (std::size_t done = 0; done < total; done += chunk) {
        REQUIRE(pair.server->recv_exact(buffer, loop.after(10s)));
        REQUIRE(pair.server->send(buffer, loop.after(10s)));
      }
    });
    loop.spawn("send", [&] { CHECK(pair.client->send(message, loop.after(10s))); });
    loop.spawn("recv", [&] { CHECK(pair.client->recv_exact(echoed, loop.after(10s))); });
  });
  loop.run();
  CHECK(echoed == message);
}

TEST_CASE("RealNetwork: the acceptor sees the connector's source 127.0.0.2", "[real][net]") {
  FdLeakCheck leaks;
  Loop loop;
  loop.spawn("test", [&] {
    Pair pair = open_pair(loop, address("tcp://127.0.0.1"), address("tcp://127.0.0.2"));
    CHECK(pair.server->peer_address().host == "127.0.0.2");
    CHECK(pair.client->local_address().host == "127.0.0.2");
    CHECK(pair.client->local_address().port != 0);
    round_trip(loop, pair);
    // A second connection from the same source gets its own port.
    auto again =
        loop.network.connect(pair.listener->address(), address("tcp://127.0.0.2"), loop.after(5s));
    REQUIRE(again);
    CHECK((*again)->local_address().port != pair.client->local_address().port);
  });
  loop.run();
}

TEST_CASE("RealNetwork: IPv6 on [::1]", "[real][net]") {
  FdLeakCheck leaks;
  Loop loop;
  bool available = true;
  loop.spawn("test", [&] {
    auto listener = loop.network.listen(address("tcp://[::1]"));
    if (!listener) {
      available = false;
      WARN("IPv6 loopback unavailable, test skipped: " << listener.error().message());
      return;
    }
    (*listener)->close();
    Pair pair = open_pair(loop, address("tcp6://[::1]"), address("tcp6://[::1]"));
    Address bound = pair.listener->address();
    CHECK(bound.host == "::1");
    CHECK(bound.to_string() == fmt::format("tcp://[::1]:{}", bound.port));
    CHECK(pair.server->peer_address().host == "::1");
    round_trip(loop, pair);
  });
  loop.run();
  if (!available) return;
  auto canonical = canonical_address(address("tcp://[0:0::1]:9"));
  REQUIRE(canonical);
  CHECK(canonical->host == "::1");
}

TEST_CASE("RealNetwork: tcp4:// and tcp6:// restrict the family", "[real][net]") {
  FdLeakCheck leaks;
  Loop loop;
  loop.spawn("test", [&] {
    auto v4_as_v6 = loop.network.listen(address("tcp6://127.0.0.1"));
    REQUIRE_FALSE(v4_as_v6);
    CHECK(v4_as_v6.error().code() == Errc::invalid_argument);
    auto v6_as_v4 = loop.network.connect(address("tcp4://[::1]:9"), std::nullopt, loop.after(1s));
    REQUIRE_FALSE(v6_as_v4);
    CHECK(v6_as_v4.error().code() == Errc::invalid_argument);
    // A source of the other family than the remote cannot be bound.
    auto mixed =
        loop.network.connect(address("tcp://127.0.0.1:9"), address("tcp://[::1]"), loop.after(1s));
    REQUIRE_FALSE(mixed);
    CHECK(mixed.error().code() == Errc::invalid_argument);
  });
  loop.run();
}

TEST_CASE("RealNetwork: a host name resolves to its first address", "[real][net]") {
  auto resolved = canonical_address(address("tcp4://localhost:8457"));
  if (!resolved) {
    WARN("localhost does not resolve here, test skipped: " << resolved.error().message());
    return;
  }
  CHECK(resolved->host == "127.0.0.1");
  CHECK(resolved->port == 8457);
  auto literal = canonical_address(address("127.0.0.2"));
  REQUIRE(literal);
  CHECK(literal->host == "127.0.0.2");
}

TEST_CASE("RealNetwork: Unix socket round trip, file removed on close", "[real][net]") {
  FdLeakCheck leaks;
  TempDir dir;
  std::string path = dir.file("hastctl");
  Loop loop;
  loop.spawn("test", [&] {
    Pair pair = open_pair(loop, address("uds://" + path));
    CHECK(pair.listener->address().path == path);
    CHECK(pair.client->peer_address().path == path);
    CHECK(pair.server->local_address().path == path);
    CHECK(pair.server->peer_address().kind == Address::Kind::unix_socket);
    round_trip(loop, pair);
    CHECK(exists(path));
    pair.listener->close();
    CHECK_FALSE(exists(path));
    pair.listener->close();  // idempotent
  });
  loop.run();
}

// Leaves a socket file that nothing listens on, as a killed daemon would.
void make_stale_socket(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  std::strncpy(un.sun_path, path.c_str(), sizeof un.sun_path - 1);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&un), sizeof un) == 0);
  REQUIRE(::listen(fd, 1) == 0);
  ::close(fd);
  REQUIRE(exists(path));
}

TEST_CASE("RealNetwork: a stale Unix socket is replaced, a live one is busy", "[real][net]") {
  FdLeakCheck leaks;
  TempDir dir;
  std::string path = dir.file("control");
  Loop loop;
  loop.spawn("test", [&] {
    make_stale_socket(path);
    Pair pair = open_pair(loop, address(path));
    round_trip(loop, pair);
    auto second = loop.network.listen(address(path));
    REQUIRE_FALSE(second);
    CHECK(second.error().code() == Errc::busy);
    CHECK(exists(path));  // the live listener's file is untouched
    pair.listener->close();
    CHECK_FALSE(exists(path));
    // A path that is not a socket is never removed.
    REQUIRE(std::filesystem::create_directory(path));
    auto not_socket = loop.network.listen(address(path));
    REQUIRE_FALSE(not_socket);
    CHECK(not_socket.error().code() == Errc::busy);
    CHECK(std::filesystem::remove(path));
  });
  loop.run();
}

TEST_CASE("RealNetwork: a TCP address in use is busy", "[real][net]") {
  FdLeakCheck leaks;
  Loop loop;
  auto first = loop.network.listen(address("tcp://127.0.0.1"));
  REQUIRE(first);
  auto second = loop.network.listen((*first)->address());
  REQUIRE_FALSE(second);
  CHECK(second.error().code() == Errc::busy);
  CHECK_THAT(second.error().message(),
             Catch::Contains((*first)->address().to_string()) && Catch::Contains("in use"));
}

TEST_CASE("RealNetwork: connecting where nothing listens is refused", "[real][net]") {
  FdLeakCheck leaks;
  // A bound socket that does not listen holds the port, so nobody else can take it.
  int holder = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(holder >= 0);
  sockaddr_in in{};
  in.sin_family = AF_INET;
  in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(holder, reinterpret_cast<sockaddr*>(&in), sizeof in) == 0);
  socklen_t length = sizeof in;
  REQUIRE(::getsockname(holder, reinterpret_cast<sockaddr*>(&in), &length) == 0);
  Loop loop;
  loop.spawn("test", [&] {
    Address target = address(fmt::format("tcp://127.0.0.1:{}", ntohs(in.sin_port)));
    auto refused = loop.network.connect(target, std::nullopt, loop.after(5s));
    REQUIRE_FALSE(refused);
    CHECK(refused.error().code() == Errc::refused);
  });
  loop.run();
  ::close(holder);
}

TEST_CASE("RealNetwork: recv past its deadline times out, then closes", "[real][net]") {
  FdLeakCheck leaks;
  Loop loop;
  loop.spawn("test", [&] {
    Pair pair = open_pair(loop, address("tcp://127.0.0.1"));
    std::vector<std::byte> buffer(10);
    Instant start = loop.clock.now();
    auto received = pair.client->recv_exact(buffer, loop.after(50ms));
    REQUIRE_FALSE(received);
    CHECK(received.error().code() == Errc::timed_out);
    CHECK(loop.clock.now() - start >= 50ms);
    pair.client->close();
    pair.client->close();  // idempotent
    auto after_close = pair.client->recv_exact(buffer, loop.after(1s));
    REQUIRE_FALSE(after_close);
    CHECK(after_close.error().code() == Errc::disconnected);
    // The peer sees the close as the end of the stream.
    auto at_server = pair.server->recv_exact(buffer, loop.after(5s));
    REQUIRE_FALSE(at_server);
    CHECK(at_server.error().code() == Errc::disconnected);
  });
  loop.run();
}

TEST_CASE("RealNetwork: send and accept past their deadlines time out", "[real][net]") {
  FdLeakCheck leaks;
  Loop loop;
  loop.spawn("test", [&] {
    Pair pair = open_pair(loop, address("tcp://127.0.0.1"));
    std::vector<std::byte> flood(64 << 20);  // more than both socket buffers hold
    auto sent = pair.client->send(flood, loop.after(100ms));
    REQUIRE_FALSE(sent);
    CHECK(sent.error().code() == Errc::timed_out);
    auto accepted = pair.listener->accept(loop.after(20ms));
    REQUIRE_FALSE(accepted);
    CHECK(accepted.error().code() == Errc::timed_out);
  });
  loop.run();
}

TEST_CASE("RealNetwork: connect past its deadline times out", "[real][net]") {
  FdLeakCheck leaks;
  Loop loop;
  loop.spawn("test", [&] {
    auto listener = loop.network.listen(address("tcp://127.0.0.1"));
    REQUIRE(listener);
    // Nobody accepts: once the backlog is full the kernel drops further handshakes.
    std::vector<std::unique_ptr<Connection>> queued;
    std::optional<Error> failure;
    for (int i = 0; i < 4 * listen_backlog && !failure; i++) {
      auto connected =
          loop.network.connect((*listener)->address(), std::nullopt, loop.after(200ms));
      if (connected) queued.push_back(std::move(*connected));
      if (!connected) failure = connected.error();
    }
    REQUIRE(failure.has_value());
    CHECK(failure->code() == Errc::timed_out);
    CHECK(queued.size() >= static_cast<std::size_t>(listen_backlog));
  });
  loop.run();
}

// close() on another fiber wakes a recv and a send blocked on the same connection.
void check_close_wakes_blocked_calls(const Address& where) {
  Loop loop;
  Pair pair;
  std::vector<std::byte> flood(64 << 20);
  std::vector<std::byte> buffer(10);
  std::optional<Result<void>> received;
  std::optional<Result<void>> sent;
  loop.spawn("test", [&] {
    pair = open_pair(loop, where);
    loop.spawn("recv", [&] { received = pair.client->recv_exact(buffer, std::nullopt); });
    // The server never reads: the send fills both socket buffers and blocks.
    loop.spawn("send", [&] { sent = pair.client->send(flood, std::nullopt); });
    REQUIRE(loop.scheduler.sleep_for(100ms));
    CHECK_FALSE(received.has_value());
    CHECK_FALSE(sent.has_value());
    pair.client->close();
  });
  Instant start = loop.clock.now();
  loop.run();
  CHECK(loop.clock.now() - start < 5s);
  REQUIRE(received.has_value());
  REQUIRE(sent.has_value());
  REQUIRE_FALSE(*received);
  REQUIRE_FALSE(*sent);
  CHECK(received->error().code() == Errc::disconnected);
  CHECK(sent->error().code() == Errc::disconnected);
}

TEST_CASE("RealNetwork: close() wakes blocked send and recv (TCP)", "[real][net]") {
  FdLeakCheck leaks;
  check_close_wakes_blocked_calls(address("tcp://127.0.0.1"));
}

TEST_CASE("RealNetwork: close() wakes blocked send and recv (Unix)", "[real][net]") {
  FdLeakCheck leaks;
  TempDir dir;
  check_close_wakes_blocked_calls(address("uds://" + dir.file("s")));
}

// Listener::close() on another fiber wakes a blocked accept with Errc::cancelled.
void check_close_wakes_accept(const Address& where) {
  Loop loop;
  std::unique_ptr<Listener> listener;
  std::optional<Result<std::unique_ptr<Connection>>> accepted;
  loop.spawn("test", [&] {
    auto listening = loop.network.listen(where);
    REQUIRE(listening);
    listener = std::move(*listening);
    loop.spawn("accept", [&] { accepted = listener->accept(std::nullopt); });
    REQUIRE(loop.scheduler.sleep_for(50ms));
    CHECK_FALSE(accepted.has_value());
    listener->close();
  });
  Instant start = loop.clock.now();
  loop.run();
  CHECK(loop.clock.now() - start < 5s);
  REQUIRE(accepted.has_value());
  REQUIRE_FALSE(*accepted);
  CHECK(accepted->error().code() == Errc::cancelled);
  // Later calls fail at once, and the address is free again.
  auto again = listener->accept(std::nullopt);
  REQUIRE_FALSE(again);
  CHECK(again.error().code() == Errc::cancelled);
  auto relisten = loop.network.listen(listener->address());
  CHECK(relisten);
}

TEST_CASE("RealNetwork: listener close wakes a blocked accept (TCP)", "[real][net]") {
  FdLeakCheck leaks;
  check_close_wakes_accept(address("tcp://127.0.0.1"));
}

TEST_CASE("RealNetwork: listener close wakes a blocked accept (Unix)", "[real][net]") {
  FdLeakCheck leaks;
  TempDir dir;
  check_close_wakes_accept(address(dir.file("listener")));
  CHECK_FALSE(exists(dir.file("listener")));
}

TEST_CASE("RealNetwork: the peer's close ends recv and then send", "[real][net]") {
  FdLeakCheck leaks;
  Loop loop;
  loop.spawn("test", [&] {
    Pair pair = open_pair(loop, address("tcp://127.0.0.1"));
    auto data = pattern_bytes(1000, 3);
    REQUIRE(pair.server->send(data, loop.after(5s)));
    pair.server->close();
    std::vector<std::byte> got(data.size());
    REQUIRE(pair.client->recv_exact(got, loop.after(5s)));  // what was sent still arrives
    CHECK(got == data);
    auto ended = pair.client->recv_exact(got, loop.after(5s));
    REQUIRE_FALSE(ended);
    CHECK(ended.error().code() == Errc::disconnected);
    CHECK_THAT(ended.error().message(), Catch::Contains("peer closed"));
    // The closed peer answers data with a reset: a later send fails.
    Result<void> sent = ok();
    for (int i = 0; i < 100 && sent; i++)
      sent = pair.client->send(data, loop.after(5s));
    REQUIRE_FALSE(sent);
    CHECK(sent.error().code() == Errc::disconnected);
  });
  loop.run();
}

// A recv of read_ahead_bytes or more goes into the caller's buffer as one ring recv that
// waits for all of it (MSG_WAITALL): bytes sent in pieces still arrive whole and in order,
// and the deadline and the peer's close still end it when the rest never comes.
TEST_CASE("RealNetwork: a long recv gathers pieces, and ends at the deadline or the close",
          "[real][net]") {
  FdLeakCheck leaks;
  Loop loop;
  loop.spawn("test", [&] {
    constexpr std::size_t piece = 40 * 1024;  // 3 pieces: far over the 64 KiB read-ahead
    Pair pair = open_pair(loop, address("tcp://127.0.0.1"));
    auto data = pattern_bytes(3 * piece, 5);
    loop.spawn("pieces", [&] {
      for (std::size_t at = 0; at < data.size(); at += piece) {
        if (at > 0) REQUIRE(loop.scheduler.sleep_for(30ms));
        REQUIRE(pair.client->send(std::span(data).subspan(at, piece), loop.after(5s)));
      }
    });
    std::vector<std::byte> got(data.size());
    REQUIRE(pair.server->recv_exact(got, loop.after(5s)));
    CHECK(got == data);

    // Only a piece comes: the deadline ends the wait for the rest.
    REQUIRE(pair.client->send(std::span(data).first(piece), loop.after(5s)));
    Instant start = loop.clock.now();
    auto partial = pair.server->recv_exact(got, loop.after(100ms));
    REQUIRE_FALSE(partial);
    CHECK(partial.error().code() == Errc::timed_out);
    CHECK(loop.clock.now() - start >= 100ms);

    // A piece, then the peer closes: the end of the stream ends it.
    Pair other = open_pair(loop, address("tcp://127.0.0.1"));
    REQUIRE(other.client->send(std::span(data).first(piece), loop.after(5s)));
    other.client->close();
    auto closed = other.server->recv_exact(got, loop.after(5s));
    REQUIRE_FALSE(closed);
    CHECK(closed.error().code() == Errc::disconnected);
    CHECK_THAT(closed.error().message(), Catch::Contains("peer closed"));
  });
  loop.run();
}

// Sends `data` on `client` from a fiber of its own; `sent` turns true when all of it is
// queued in the sockets.
void send_in_background(Loop& loop, Connection& client, const std::vector<std::byte>& data,
                        bool& sent) {
  loop.spawn("send", [&loop, &client, &data, &sent] {
    REQUIRE(client.send(data, loop.after(5s)));
    sent = true;
  });
}

// Until send_in_background's `sent`, at most 2 s: a loaded machine may take longer than any
// fixed pause.
void wait_until_sent(Loop& loop, const bool& sent) {
  for (int i = 0; i < 2000 && !sent; i++) REQUIRE(loop.scheduler.sleep_for(1ms));
  REQUIRE(sent);
}

// After a long recv (a large payload) the next short one reads ahead a page at most, so
// the next payload's first bytes are not copied through the read-ahead buffer; the one
// after reads ahead in full again (batches of small messages).
TEST_CASE("RealNetwork: the read-ahead after a long recv is short", "[real][net]") {
  FdLeakCheck leaks;
  Loop loop;
  loop.spawn("test", [&] {
    Pair pair = open_pair(loop, address("tcp://127.0.0.1"));
    constexpr std::size_t long_read = 256 * 1024;
    constexpr std::size_t ahead = net::RealConnection::read_ahead_bytes;
    auto data = pattern_bytes(long_read + 16 + 3 * ahead, 9);
    bool sent = false;
    send_in_background(loop, *pair.client, data, sent);
    auto* server = dynamic_cast<net::RealConnection*>(pair.server.get());
    REQUIRE(server != nullptr);
    std::vector<std::byte> got(long_read);
    REQUIRE(pair.server->recv_exact(got, loop.after(5s)));
    wait_until_sent(loop, sent);
    std::vector<std::byte> header(16);
    REQUIRE(pair.server->recv_exact(header, loop.after(5s)));
    CHECK(std::equal(header.begin(), header.end(), data.begin() + long_read));
    std::vector<std::byte> kept = server->take_unread().bytes;
    CHECK(kept.size() == net::RealConnection::short_read_ahead_bytes - header.size());
    CHECK(std::equal(kept.begin(), kept.end(), data.begin() + long_read + 16));
    // The next short recv reads ahead in full again: more than a page.
    wait_until_sent(loop, sent);
    std::vector<std::byte> small(16);
    REQUIRE(pair.server->recv_exact(small, loop.after(5s)));
    std::size_t at = long_read + net::RealConnection::short_read_ahead_bytes;
    CHECK(std::equal(small.begin(), small.end(), data.begin() + at));
    at += small.size();
    kept = server->take_unread().bytes;
    CHECK(kept.size() > net::RealConnection::short_read_ahead_bytes);
    CHECK(kept.size() <= ahead - small.size());
    CHECK(std::equal(kept.begin(), kept.end(), data.begin() + at));
    at += kept.size();
    // The rest arrives in order (and the sender finishes).
    std::vector<std::byte> rest(data.size() - at);
    REQUIRE(pair.server->recv_exact(rest, loop.after(5s)));
    CHECK(std::equal(rest.begin(), rest.end(), data.begin() + at));
  });
  loop.run();
}

// A connection handed to another handle (adopt_connection, as hastd moves one to a
// resource's thread) keeps its stream: the bytes the old handle read ahead come first, and
// after the old handle's long recv the new handle's first read-ahead is short, as the old
// one's would have been.
TEST_CASE("RealNetwork: an adopted connection keeps the read-ahead and its state",
          "[real][net]") {
  FdLeakCheck leaks;
  Loop loop;
  loop.spawn("test", [&] {
    Pair pair = open_pair(loop, address("tcp://127.0.0.1"));
    constexpr std::size_t long_read = 256 * 1024;
    constexpr std::size_t ahead = net::RealConnection::read_ahead_bytes;
    auto data = pattern_bytes(long_read + 3 * ahead, 11);
    bool sent = false;
    send_in_background(loop, *pair.client, data, sent);
    std::vector<std::byte> got(long_read);
    REQUIRE(pair.server->recv_exact(got, loop.after(5s)));
    wait_until_sent(loop, sent);
    // Nothing read ahead yet, but the last recv was long: the state alone moves.
    auto adopted = adopt_connection(loop.ring, *pair.server);
    REQUIRE(adopted);
    auto* second = dynamic_cast<net::RealConnection*>(adopted->get());
    REQUIRE(second != nullptr);
    std::vector<std::byte> header(16);
    REQUIRE((*adopted)->recv_exact(header, loop.after(5s)));
    CHECK(std::equal(header.begin(), header.end(), data.begin() + long_read));
    std::size_t at = long_read + header.size();
    auto kept = second->take_unread();
    CHECK(kept.bytes.size() == net::RealConnection::short_read_ahead_bytes - header.size());
    CHECK_FALSE(kept.after_long_read);
    CHECK(std::equal(kept.bytes.begin(), kept.bytes.end(), data.begin() + at));
    at += kept.bytes.size();
    // Read-ahead bytes move too: a short recv on the second handle reads ahead in full,
    // and a third handle gets those bytes first.
    REQUIRE((*adopted)->recv_exact(header, loop.after(5s)));
    CHECK(std::equal(header.begin(), header.end(), data.begin() + at));
    at += header.size();
    auto third = adopt_connection(loop.ring, **adopted);
    REQUIRE(third);
    std::vector<std::byte> rest(data.size() - at);
    REQUIRE((*third)->recv_exact(rest, loop.after(5s)));
    CHECK(std::equal(rest.begin(), rest.end(), data.begin() + at));
    (*third)->close();
  });
  loop.run();
}

TEST_CASE("RealNetwork: cancelling a fiber ends its recv with cancelled", "[real][net]") {
  FdLeakCheck leaks;
  Loop loop;
  Pair pair;
  std::optional<Result<void>> received;
  loop.spawn("test", [&] {
    pair = open_pair(loop, address("tcp://127.0.0.1"));
    auto reader = loop.scheduler.spawn("recv", [&] {
      std::vector<std::byte> bytes(10);
      received = pair.client->recv_exact(bytes, std::nullopt);
    });
    REQUIRE(reader);
    REQUIRE(loop.scheduler.sleep_for(20ms));
    loop.scheduler.cancel(*reader);
  });
  loop.run();
  REQUIRE(received.has_value());
  REQUIRE_FALSE(*received);
  CHECK(received->error().code() == Errc::cancelled);
}

TEST_CASE("RealNetwork: every descriptor is close-on-exec", "[real][net]") {
  FdLeakCheck leaks;
  TempDir dir;
  std::set<int> before = open_fds();
  Loop loop;
  std::vector<Pair> pairs;
  loop.spawn("test", [&] {
    pairs.push_back(open_pair(loop, address("tcp://127.0.0.1"), address("127.0.0.2")));
    pairs.push_back(open_pair(loop, address(dir.file("cloexec"))));
  });
  loop.run();
  int checked = 0;
  for (int fd : open_fds()) {
    if (before.contains(fd)) continue;
    int flags = ::fcntl(fd, F_GETFD);
    if (flags < 0) continue;  // the directory listing's own descriptor
    CHECK((flags & FD_CLOEXEC) != 0);
    checked++;
  }
  CHECK(checked >= 6);  // two listeners, four connections (plus the ring's own)
  pairs.clear();
}

}  // namespace
}  // namespace hast::real
