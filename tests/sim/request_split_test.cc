// Requests longer than the peer accepts (Primary::submit): a secondary that announces no
// ext_maxrequest, as FreeBSD's does not, gets every WRITE in pieces of at most 128 KiB
// (request_size_send_default), each acknowledged on its own, and the replicas end up
// identical; without the split its 512 KiB writes would exceed what it accepts.
#include <algorithm>
#include <cstring>
#include <map>
#include <memory>

#include <catch2/catch.hpp>

#include "core/proto/frame.h"
#include "core/replication/local_component.h"
#include "core/replication/secondary.h"
#include "sim/cluster.h"
#include "tests/support/handmade_secondary.h"
#include "tests/support/sim_fixtures.h"

using namespace std::chrono_literals;
using hast::Instant;
namespace proto = hast::proto;
namespace replication = hast::replication;

namespace {

constexpr hast::sim::NodeId kA = 0;

// What the wrapped secondary saw of the primary's requests.
struct Seen {
  std::uint64_t writes = 0;
  std::uint64_t length_max = 0;
  std::uint64_t follow_ons = 0;  // a WRITE right after the previous seq's, at its end
  std::uint64_t last_seq = 0;
  std::uint64_t last_end = 0;
  const replication::SecondaryStats* stats = nullptr;  // of the session serving now
};

// Connection A of a secondary that speaks like FreeBSD's about request sizes: the accept
// reply it sends leaves out ext_maxrequest. Requests are read by recv_message as header,
// nv, payload (one recv_exact each): the nvs are decoded here and their sizes recorded.
class FreeBsdSized final : public hast::Connection {
 public:
  FreeBsdSized(hast::Connection& inner, Seen& seen) : inner_(inner), seen_(seen) {}

  hast::Result<void> send(std::span<const std::byte> data, hast::Deadline deadline) override {
    return send_gather(data, {}, deadline);
  }
  hast::Result<void> send_gather(std::span<const std::byte> head, std::span<const std::byte> body,
                                 hast::Deadline deadline) override {
    auto nv = proto::Nv::decode(head.subspan(proto::frame_header_size));
    REQUIRE(nv.has_value());
    if (!nv->exists("datasize")) return inner_.send_gather(head, body, deadline);
    proto::Nv stripped;  // the accept reply, without ext_maxrequest
    for (const auto& element : nv->elements()) {
      if (element.name == "ext_maxrequest") continue;
      stripped.add_raw(element.type, element.name, element.data);
    }
    auto frame = proto::encode_frame(std::to_integer<std::uint8_t>(head[0]), stripped, body);
    return inner_.send(frame, deadline);
  }
  hast::Result<void> recv_exact(std::span<std::byte> buffer, hast::Deadline deadline) override {
    HAST_TRY(inner_.recv_exact(buffer, deadline));
    if (payload_left_ > 0) {
      payload_left_ -= std::min<std::uint64_t>(payload_left_, buffer.size());
    } else if (nv_size_ == 0) {
      REQUIRE(buffer.size() == proto::frame_header_size);
      std::memcpy(&nv_size_, buffer.data() + 1, sizeof nv_size_);
    } else {
      REQUIRE(buffer.size() == nv_size_);
      nv_size_ = 0;
      auto nv = proto::Nv::decode(buffer);
      REQUIRE(nv.has_value());
      payload_left_ = nv->get_uint32("size").value_or(0);
      record(*nv);
    }
    return hast::ok();
  }
  void close() override { inner_.close(); }
  hast::Address peer_address() const override { return inner_.peer_address(); }
  hast::Address local_address() const override { return inner_.local_address(); }

 private:
  void record(const proto::Nv& nv) {
    auto request = proto::Request::from_nv(nv);
    REQUIRE(request.has_value());
    if (request->cmd != proto::RequestCommand::write) return;
    seen_.writes++;
    seen_.length_max = std::max(seen_.length_max, request->length);
    if (request->seq == seen_.last_seq + 1 && request->offset == seen_.last_end) seen_.follow_ons++;
    seen_.last_seq = request->seq;
    seen_.last_end = request->offset + request->length;
  }

  hast::Connection& inner_;
  Seen& seen_;
  std::uint32_t nv_size_ = 0;
  std::uint64_t payload_left_ = 0;
};

constexpr std::string_view kConfig =
    "listen tcp://0.0.0.0\nreplication fullsync\ntimeout 1\n"
    "resource shared {\n  local /dev/sim\n  on hasta {\n    remote tcp://10.0.0.2\n  }\n"
    "  on hastb {\n    remote tcp://10.0.0.1\n  }\n}\n";

// hastb: one SecondarySession at a time over the wrapped connection A.
void freebsd_sized_secondary(hast::NodeIo& io, Seen& seen) {
  hast::test::serve_handmade_secondary(
      io, kConfig,
      [&](hast::test::HandmadeSecondary& secondary, std::shared_ptr<hast::Connection> first,
          std::shared_ptr<hast::Connection> second, const proto::IdentityRequest& identity) {
        FreeBsdSized wrapped(*first, seen);
        replication::SecondarySession session(secondary.context, secondary.local, wrapped,
                                              *second, 2, secondary.split_brain_reported);
        seen.stats = &session.stats();
        hast::ignore_error(session.run(identity), "the test looks at the data");
        seen.stats = nullptr;
      });
}

}  // namespace

TEST_CASE("Primary: writes over a FreeBSD peer's 128 KiB limit go in pieces",
          "[sim][replication]") {
  auto options = hast::test::pair_options(
      7, hast::config::ReplicationMode::fullsync,
      {.mean_interval = 2ms, .request_bytes_max = 512 * 1024, .reconnect = 100ms, .keepalive = 5s});
  hast::sim::SimCluster cluster(options);
  Seen seen;
  cluster.node(1).set_program([&](hast::NodeIo& io) { freebsd_sized_secondary(io, seen); });
  cluster.start(kA, true);
  cluster.start(1);
  auto& world = cluster.world();
  world.at(Instant{} + 10ms, "role", [&] { cluster.set_role(kA, hast::meta::Role::primary); });
  world.at(Instant{} + 50ms, "workload", [&] { cluster.workload().start(); });
  world.at(Instant{} + 1500ms, "stop", [&] { cluster.workload().stop(); });
  bool settled = world.run_until(
      [&] {
        auto a = cluster.status(kA);
        return world.now() > Instant{} + 1500ms && cluster.workload().idle() && a &&
               a->status == "complete" && a->dirty_bytes == 0 && !a->sync.running;
      },
      Instant{} + 10s);
  CHECK(settled);
  CHECK(seen.writes > 0);
  CHECK(seen.length_max <= proto::request_size_send_default);
  CHECK(seen.follow_ons > 0);      // some writes were longer than a piece
  REQUIRE(seen.stats != nullptr);  // one session served it all
  CHECK(seen.stats->writes == seen.writes);
  CHECK(seen.stats->errors == 0);
  CHECK(cluster.data_identical());
  cluster.node(1).kill();
  cluster.node(kA).kill();
}
