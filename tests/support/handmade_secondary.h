// A secondary run by hand inside a simulated node, for tests that need to see or change
// what a SecondarySession gets (a wrapped connection, sessions that outlive each other):
// hastb of a one-resource config, its local component created and opened on /dev/sim,
// and the listener loop that pairs each first connection with its second by token (the
// handshake of hast-spec §6.3), handing every complete pair to the test.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string_view>

#include <catch2/catch.hpp>

#include "core/config/config.h"
#include "core/fiber/task_group.h"
#include "core/io/node_io.h"
#include "core/proto/frame.h"
#include "core/replication/local_component.h"
#include "core/replication/secondary.h"
#include "tests/support/sim_fixtures.h"

namespace hast::test {

// What a handed-over pair runs against: the resource's context and local component.
struct HandmadeSecondary {
  replication::ResourceContext& context;
  replication::LocalComponent& local;
  bool& split_brain_reported;
  // For sessions that run beside the listener; joined before the context goes.
  fiber::TaskGroup& sessions;
};

// Called for every connection pair: `first` carries the primary's requests, `second` the
// replies; `identity` is the primary's identity request. Runs on the listener's fiber:
// a session that must not hold up the next accept is spawned by the callee.
using OnPair = std::function<void(HandmadeSecondary&, std::shared_ptr<Connection> first,
                                  std::shared_ptr<Connection> second,
                                  const proto::IdentityRequest& identity)>;

// Serves `config_text` as hastb (timeout 1 s, keepalive 5 s) until the listener fails
// (the node dies). A hello whose reply cannot be sent is dropped, as HastNode does.
inline void serve_handmade_secondary(NodeIo& io, std::string_view config_text,
                                     const OnPair& on_pair) {
  using namespace std::chrono_literals;
  auto parsed = config::parse(config_text);
  REQUIRE(parsed.has_value());
  config::NodeIdentity host;
  host.hostname = "hastb";
  auto node = config::resolve(*parsed, host);
  REQUIRE(node.has_value());
  REQUIRE(replication::create_local(io.disk, "shared", {256 * 1024, 8, 0}).has_value());
  auto local = replication::LocalComponent::open(io.disk, io.scheduler, "/dev/sim", "shared", true);
  REQUIRE(local.has_value());
  NoEvents events;
  replication::Timing timing;
  timing.timeout = 1s;
  timing.keepalive = 5s;
  replication::ResourceContext context{io, node->resources.front(), events, timing};
  bool split_brain_reported = false;
  fiber::TaskGroup sessions(io.scheduler);
  HandmadeSecondary secondary{context, **local, split_brain_reported, sessions};
  auto listener = io.network.listen(node->listen.front().address);
  REQUIRE(listener.has_value());
  std::map<proto::Token, std::shared_ptr<Connection>> firsts;
  while (true) {
    auto accepted = (*listener)->accept(std::nullopt);
    if (!accepted) return;
    std::shared_ptr<Connection> connection = std::move(*accepted);
    auto message = proto::recv_message(*connection, proto::RecvLimits{}, std::nullopt);
    if (!message) continue;
    auto token = proto::hello_token(message->nv);
    REQUIRE(token.has_value());
    if (!token->has_value()) {
      proto::HelloReply reply;
      for (auto& byte : reply.token) byte = static_cast<std::uint8_t>(io.random.next_u64());
      if (proto::send_message(*connection, 2, reply.to_nv(), {}, std::nullopt)) {
        firsts[reply.token] = connection;
      }
      continue;
    }
    auto identity = proto::IdentityRequest::from_nv(message->nv);
    REQUIRE(identity.has_value());
    std::shared_ptr<Connection> first = firsts[**token];
    REQUIRE(first != nullptr);
    on_pair(secondary, std::move(first), std::move(connection), *identity);
  }
}

}  // namespace hast::test
