// O7, one primary session per resource on a secondary (see session_oracle.h).
#include "sim/session_oracle.h"

#include <fmt/format.h>

#include "core/proto/frame.h"

namespace hast::sim {
namespace {

// The connection pair of a session, for messages: "connections 7 (requests) and 8".
std::string pair_text(ConnectionId first, ConnectionId second) {
  return fmt::format("connections {} (requests) and {} (replies)", first, second);
}

}  // namespace

SessionOracle::SessionOracle(SimCluster& cluster) : cluster_(cluster) {
  cluster_.world().network().set_tap(this);
}

SessionOracle::~SessionOracle() {
  cluster_.world().network().set_tap(nullptr);
}

// The next whole message's nv, or nullopt until all of it (payload included) is here.
std::optional<proto::Nv> SessionOracle::FrameStream::next() {
  if (broken || buffer.size() < proto::frame_header_size) return std::nullopt;
  auto header = proto::decode_header(std::span(buffer).first(proto::frame_header_size),
                                     proto::nv_size_max_default);
  if (!header) {
    broken = true;
    return std::nullopt;
  }
  std::size_t nv_end = proto::frame_header_size + header->nv_size;
  if (buffer.size() < nv_end) return std::nullopt;
  auto nv = proto::Nv::decode(std::span(buffer).subspan(proto::frame_header_size, header->nv_size));
  auto payload = nv ? proto::announced_payload_size(*nv) : fail(nv.error());
  if (!payload) {
    broken = true;
    return std::nullopt;
  }
  if (buffer.size() < nv_end + *payload) return std::nullopt;
  buffer.erase(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(nv_end + *payload));
  messages++;
  return std::move(*nv);
}

void SessionOracle::on_consumed(ConnectionId id, NodeId node, Side side,
                                std::span<const std::byte> bytes) {
  if (side != Side::server) return;
  Accepted& connection = connections_[id];
  connection.node = node;
  if (connection.kind != Kind::unknown || connection.consumed.broken) return;
  connection.consumed.buffer.insert(connection.consumed.buffer.end(), bytes.begin(), bytes.end());
  if (auto first = connection.consumed.next()) {
    classify(id, connection, *first);
    connection.consumed.buffer.clear();  // later messages are requests: not needed
  }
}

void SessionOracle::on_sent(ConnectionId id, NodeId node, Side side,
                            std::span<const std::byte> bytes) {
  if (side != Side::server) return;
  auto found = connections_.find(id);
  if (found == connections_.end() || found->second.kind != Kind::first) return;
  Accepted& connection = found->second;
  HAST_ASSERT(connection.node == node);
  if (connection.sent.messages >= 2 || connection.sent.broken) return;
  connection.sent.buffer.insert(connection.sent.buffer.end(), bytes.begin(), bytes.end());
  while (connection.sent.messages < 2) {
    auto reply = connection.sent.next();
    if (!reply) return;
    on_reply(id, connection, *reply);
  }
  connection.sent.buffer.clear();
}

// A (HelloRequest: no token) or B (IdentityRequest: the token of an A of the same node).
void SessionOracle::classify(ConnectionId id, Accepted& connection, const proto::Nv& first) {
  auto token = proto::hello_token(first);
  auto resource = first.get_string("resource");
  if (!token || !resource) {
    connection.kind = Kind::other;
    return;
  }
  connection.resource = std::string(*resource);
  connection.kind = token->has_value() ? Kind::second : Kind::first;
  if (!token->has_value()) return;
  connection.token = **token;
  for (auto& [other_id, other] : connections_) {
    bool match = other.kind == Kind::first && other.node == connection.node && other.partner == 0 &&
                 other.token == connection.token;
    if (!match) continue;
    other.partner = id;
    connection.partner = other_id;
    return;
  }
}

// The secondary's first two messages on A: HelloReply (its token), then AcceptReply.
void SessionOracle::on_reply(ConnectionId id, Accepted& connection, const proto::Nv& reply) {
  if (proto::is_refusal(reply)) {
    connection.sent.messages = 2;  // refused: no session on this connection
    return;
  }
  if (connection.sent.messages == 1) {
    auto hello = proto::HelloReply::from_nv(reply);
    if (hello) connection.token = hello->token;
    return;
  }
  connection.accepted = true;
  connection.accepted_at = cluster_.world().now();
  accepted_++;
  check_accept(id, connection);
}

bool SessionOracle::open_here(ConnectionId id) const {
  if (id == 0) return false;
  auto info = cluster_.world().network().connection_info(id);
  return info && info->server_open;
}

// Every session of the resource this node accepted before is over at its end.
void SessionOracle::check_accept(ConnectionId id, const Accepted& connection) {
  for (const auto& [other_id, other] : connections_) {
    if (other_id == id || !other.accepted || other.node != connection.node ||
        other.resource != connection.resource) {
      continue;
    }
    bool requests_open = open_here(other_id);
    bool replies_open = open_here(other.partner);
    if (!requests_open && !replies_open) continue;
    violations_.push_back(Violation{
        "O7",
        fmt::format("{} accepted a primary session of resource {} ({}) at {} while the session "
                    "it accepted at {} ({}) was still open at its end (requests {}, replies {}): "
                    "two primary sessions at once",
                    cluster_.node(connection.node).name(), connection.resource,
                    pair_text(id, connection.partner), format_instant(cluster_.world().now()),
                    format_instant(other.accepted_at), pair_text(other_id, other.partner),
                    requests_open ? "open" : "closed", replies_open ? "open" : "closed")});
  }
}

}  // namespace hast::sim
