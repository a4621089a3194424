// Typed protocol messages (reference/hast-spec.md §6.3, §6.4, §6.7, §8.1–8.2): golden
// frames written by hand from the spec, decoding rules and the errors that name fields,
// request validation, errno mapping, control messages, round-trip properties for every
// message and random or mutated nv input to every decoder.
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <limits>
#include <string>
#include <vector>

#include <rapidcheck.h>
#include <catch2/catch.hpp>

#include "core/proto/control_messages.h"
#include "core/proto/frame.h"
#include "core/proto/messages.h"
#include "core/proto/nv.h"
#include "tests/support/property.h"

using hast::Errc;
using namespace hast::proto;

namespace {

std::vector<std::byte> raw(std::initializer_list<int> values) {
  std::vector<std::byte> out;
  for (int value : values)
    out.push_back(static_cast<std::byte>(value));
  return out;
}

template <typename T>
void require_error(const hast::Result<T>& result, Errc code, const std::string& needle) {
  REQUIRE_FALSE(result.has_value());
  INFO(result.error().message());
  CHECK(result.error().code() == code);
  CHECK(result.error().context().find(needle) != std::string::npos);
}

std::vector<std::string> names(const Nv& nv) {
  std::vector<std::string> out;
  for (const auto& element : nv.elements())
    out.push_back(element.name);
  return out;
}

Token test_token() {
  Token token{};
  for (std::size_t i = 0; i < token.size(); i++)
    token[i] = static_cast<std::uint8_t>(i * 17);
  return token;
}

// ---- Generators ----

rc::Gen<std::string> gen_text() {
  return rc::gen::container<std::string>(rc::gen::inRange<char>(1, 127));
}

Token gen_token() {
  Token token{};
  for (auto& b : token)
    b = *rc::gen::arbitrary<std::uint8_t>();
  return token;
}

Extensions gen_extensions() {
  Extensions extensions;
  extensions.batch_flush = *rc::gen::arbitrary<bool>();
  if (*rc::gen::arbitrary<bool>()) {
    extensions.request_size_max =
        *rc::gen::inRange(request_size_send_default, request_size_accept_max + 1);
  }
  return extensions;
}

Role gen_role(bool settable_only) {
  if (settable_only) return *rc::gen::element(Role::init, Role::primary, Role::secondary);
  return *rc::gen::element(Role::undef, Role::init, Role::primary, Role::secondary);
}

std::int16_t gen_nonzero_int16() {
  return *rc::gen::suchThat(rc::gen::arbitrary<std::int16_t>(),
                            [](std::int16_t v) { return v != 0; });
}

Request gen_request() {
  Request request;
  request.cmd = static_cast<RequestCommand>(*rc::gen::inRange(1, 6));
  if (request.cmd == RequestCommand::keepalive) return request;
  request.seq = *rc::gen::inRange<std::uint64_t>(1, std::numeric_limits<std::uint64_t>::max());
  request.offset = *rc::gen::arbitrary<std::uint64_t>();
  request.length = *rc::gen::arbitrary<std::uint64_t>();
  request.memsync = request.cmd == RequestCommand::write && *rc::gen::arbitrary<bool>();
  return request;
}

WorkerStatus gen_worker() {
  WorkerStatus w;
  w.status = *rc::gen::element(std::string("complete"), std::string("degraded"));
  auto u64 = [] { return *rc::gen::arbitrary<std::uint64_t>(); };
  w.dirty = u64();
  w.extentsize = *rc::gen::arbitrary<std::uint32_t>();
  w.keepdirty = *rc::gen::arbitrary<std::uint32_t>();
  for (auto* field :
       {&w.stat_read, &w.stat_write, &w.stat_delete, &w.stat_flush, &w.stat_activemap_update,
        &w.stat_read_error, &w.stat_write_error, &w.stat_delete_error, &w.stat_flush_error,
        &w.idle_queue_size, &w.local_queue_size, &w.send_queue_size, &w.recv_queue_size,
        &w.done_queue_size})
    *field = u64();
  return w;
}

ResourceStatus gen_resource_status() {
  ResourceStatus status;
  status.resource = *gen_text();
  if (*rc::gen::inRange(0, 4) == 0) {
    status.error = gen_nonzero_int16();
    return status;
  }
  status.provname = *gen_text();
  status.localpath = *gen_text();
  status.remoteaddr = *gen_text();
  if (*rc::gen::arbitrary<bool>()) status.sourceaddr = *gen_text();
  status.replication = *gen_text();
  status.checksum = *gen_text();
  status.compression = *gen_text();
  status.role = gen_role(false);
  status.workerpid = *rc::gen::arbitrary<std::int32_t>();
  if (*rc::gen::arbitrary<bool>()) status.worker = gen_worker();
  return status;
}

// Names every decoder looks at, so random nvs hit real fields.
const std::vector<std::string>& field_pool() {
  static const std::vector<std::string> pool = {"resource",
                                                "version",
                                                "token",
                                                "errmsg",
                                                "wait",
                                                "virgin",
                                                "resuid",
                                                "localcnt",
                                                "remotecnt",
                                                "datasize",
                                                "extentsize",
                                                "syncsrc",
                                                "mapsize",
                                                "cmd",
                                                "seq",
                                                "offset",
                                                "length",
                                                "memsync",
                                                "received",
                                                "error",
                                                "role",
                                                "ext_batchflush",
                                                "ext_maxrequest",
                                                "resource0",
                                                "resource1",
                                                "role0",
                                                "role1",
                                                "error0",
                                                "error1",
                                                "provname0",
                                                "localpath0",
                                                "remoteaddr0",
                                                "sourceaddr0",
                                                "replication0",
                                                "checksum0",
                                                "compression0",
                                                "workerpid0",
                                                "status0",
                                                "dirty0",
                                                "extentsize0",
                                                "keepdirty0",
                                                "stat_read0",
                                                "done_queue_size0",
                                                "size",
                                                "hash",
                                                "other"};
  return pool;
}

// One random element: a pool name, a random type and a value biased toward the small
// numbers and role names that decoders treat specially.
Nv::Element gen_field() {
  auto name = *rc::gen::elementOf(field_pool());
  auto type = static_cast<NvType>(*rc::gen::weightedElement<int>({{3, 2},
                                                                  {2, 1},
                                                                  {2, 3},
                                                                  {2, 6},
                                                                  {3, 8},
                                                                  {2, 5},
                                                                  {2, 7},
                                                                  {2, 10},
                                                                  {3, 17},
                                                                  {1, 4},
                                                                  {1, 9},
                                                                  {1, 11},
                                                                  {1, 12},
                                                                  {1, 13},
                                                                  {1, 14},
                                                                  {1, 15},
                                                                  {1, 16}}));
  std::vector<std::byte> data;
  if (type == NvType::string) {
    std::string value = *rc::gen::oneOf(
        rc::gen::element(std::string("all"), std::string("init"), std::string("primary"),
                         std::string("secondary"), std::string("unknown"), std::string("")),
        gen_text());
    for (char c : value)
      data.push_back(static_cast<std::byte>(c));
    data.push_back(std::byte{0});
    return Nv::Element{type, name, data};
  }
  std::size_t item = nv_item_size(type);
  std::size_t count = type <= NvType::uint64        ? 1
                      : *rc::gen::arbitrary<bool>() ? 16
                                                    : *rc::gen::inRange<std::size_t>(1, 20);
  data.resize(item * count);
  auto small = *rc::gen::arbitrary<bool>();
  for (std::size_t i = 0; i < data.size(); i++) {
    bool low_byte = i % item == 0;
    data[i] = static_cast<std::byte>(small ? (low_byte ? *rc::gen::inRange(0, 6) : 0)
                                           : *rc::gen::inRange(0, 256));
  }
  return Nv::Element{type, name, data};
}

Nv gen_nv() {
  auto fields = *rc::gen::container<std::vector<Nv::Element>>(rc::gen::exec(gen_field));
  Nv nv;
  for (const auto& f : fields)
    nv.add_raw(f.type, f.name, f.data);
  return nv;
}

// Decoding never crashes; what decodes re-encodes to the same value.
template <typename T>
void check_decoder(const Nv& nv, const std::function<bool(const T&)>& encodable = nullptr) {
  auto decoded = T::from_nv(nv);
  if (!decoded) {
    RC_ASSERT(!decoded.error().context().empty());
    return;
  }
  if (encodable && !encodable(*decoded)) return;
  auto again = T::from_nv(decoded->to_nv());
  RC_ASSERT(again.has_value());
  RC_ASSERT(*again == *decoded);
}

void check_every_decoder(const Nv& nv) {
  check_decoder<HelloRequest>(nv);
  check_decoder<HelloReply>(nv);
  check_decoder<Refusal>(nv);
  check_decoder<IdentityRequest>(nv);
  check_decoder<AcceptReply>(nv);
  check_decoder<Request>(
      nv, [](const Request& r) { return r.seq != 0 || r.cmd == RequestCommand::keepalive; });
  check_decoder<Reply>(nv);
  check_decoder<ControlRequest>(nv);
  check_decoder<SetRoleReply>(nv);
  check_decoder<StatusReply>(nv);
  auto token = hello_token(nv);
  if (token && *token) RC_ASSERT((*token)->size() == token_size);
  for (std::uint32_t sector : {512u, 4096u}) {
    auto request = Request::from_nv(nv);
    if (request) {
      auto valid = validate_request(*request, sector, 1 << 30, request_size_accept_max);
      if (!valid) RC_ASSERT(valid.error().code() == Errc::invalid_argument);
    }
  }
}

// Removes, retypes or duplicates one element of a valid nv.
Nv mutate(const Nv& nv) {
  std::vector<Nv::Element> elements = nv.elements();
  auto mutations = *rc::gen::weightedElement<int>({{4, 1}, {2, 2}, {1, 3}});
  for (int m = 0; m < mutations && !elements.empty(); m++) {
    auto at = *rc::gen::inRange<std::size_t>(0, elements.size());
    switch (*rc::gen::inRange(0, 4)) {
      case 0:
        elements.erase(elements.begin() + static_cast<std::ptrdiff_t>(at));
        break;
      case 1: {
        Nv::Element field = gen_field();
        field.name = elements[at].name;
        elements[at] = field;
        break;
      }
      case 2:
        elements.insert(elements.begin(), gen_field());
        break;
      default:
        elements.push_back(elements[at]);
        break;
    }
  }
  Nv out;
  for (const auto& e : elements)
    out.add_raw(e.type, e.name, e.data);
  return out;
}

}  // namespace

// ---- Golden frames ----

TEST_CASE("Messages: a KEEPALIVE request frame, by hand", "[unit][proto]") {
  Request keepalive{.cmd = RequestCommand::keepalive};
  auto frame = encode_frame(2, keepalive.to_nv(), {});
  CHECK(frame == raw({
                     0x02, 0x16, 0x00, 0x00, 0x00,                    // v2, nv of 22 bytes
                     0x02, 0x04, 0x01, 0x00, 0x00, 0x00,              // uint8 "cmd", dsize 1
                     0x63, 0x6d, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00,  // "cmd\0" + 4 padding
                     0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // 5 = KEEPALIVE
                 }));
}

TEST_CASE("Messages: a memsync WRITE request header, by hand", "[unit][proto]") {
  Request write{
      .cmd = RequestCommand::write, .seq = 7, .offset = 4096, .length = 8192, .memsync = true};
  auto frame = encode_frame(2, write.to_nv(), {});
  CHECK(frame == raw({
                     0x02, 0x6e, 0x00, 0x00, 0x00,  // v2, nv of 5 x 22 = 110 bytes
                     // cmd: uint8, namesize 4, dsize 1; "cmd\0" + 4; 2 = WRITE
                     0x02, 0x04, 0x01, 0x00, 0x00, 0x00,              //
                     0x63, 0x6d, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00,  //
                     0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  //
                     // seq: uint64, namesize 4, dsize 8; "seq\0" + 4; 7
                     0x08, 0x04, 0x08, 0x00, 0x00, 0x00,              //
                     0x73, 0x65, 0x71, 0x00, 0x00, 0x00, 0x00, 0x00,  //
                     0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  //
                     // offset: uint64, namesize 7, dsize 8; "offset\0" + 1; 0x1000
                     0x08, 0x07, 0x08, 0x00, 0x00, 0x00,              //
                     0x6f, 0x66, 0x66, 0x73, 0x65, 0x74, 0x00, 0x00,  //
                     0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  //
                     // length: uint64, namesize 7, dsize 8; "length\0" + 1; 0x2000
                     0x08, 0x07, 0x08, 0x00, 0x00, 0x00,              //
                     0x6c, 0x65, 0x6e, 0x67, 0x74, 0x68, 0x00, 0x00,  //
                     0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  //
                     // memsync: uint8, namesize 8, dsize 1; "memsync\0"; 1
                     0x02, 0x08, 0x01, 0x00, 0x00, 0x00,              //
                     0x6d, 0x65, 0x6d, 0x73, 0x79, 0x6e, 0x63, 0x00,  //
                     0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  //
                 }));
}

TEST_CASE("Messages: a memsync 'received' reply, by hand", "[unit][proto]") {
  Reply received{.seq = 7, .received = true};
  CHECK(encode_frame(2, received.to_nv(), {}) ==
        raw({
            0x02, 0x34, 0x00, 0x00, 0x00,  // v2, nv of 22 + 30 = 52 bytes
            // seq: uint64 7
            0x08, 0x04, 0x08, 0x00, 0x00, 0x00,              //
            0x73, 0x65, 0x71, 0x00, 0x00, 0x00, 0x00, 0x00,  //
            0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  //
            // received: int8 (type 1), namesize 9, dsize 1; "received\0" + 7; 1
            0x01, 0x09, 0x01, 0x00, 0x00, 0x00,              //
            0x72, 0x65, 0x63, 0x65, 0x69, 0x76, 0x65, 0x64,  //
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  //
            0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  //
        }));
}

TEST_CASE("Messages: a reply with an error, by hand", "[unit][proto]") {
  Reply failed{.seq = 9, .error = wire_errno::eio};
  CHECK(encode_frame(2, failed.to_nv(), {}) ==
        raw({
            0x02, 0x2c, 0x00, 0x00, 0x00,  // v2, nv of 44 bytes
            // seq: uint64 9
            0x08, 0x04, 0x08, 0x00, 0x00, 0x00,              //
            0x73, 0x65, 0x71, 0x00, 0x00, 0x00, 0x00, 0x00,  //
            0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  //
            // error: int16 (type 3), namesize 6, dsize 2; "error\0" + 2; 5 = EIO
            0x03, 0x06, 0x02, 0x00, 0x00, 0x00,              //
            0x65, 0x72, 0x72, 0x6f, 0x72, 0x00, 0x00, 0x00,  //
            0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  //
        }));
  // A successful final reply is the seq alone.
  CHECK(names(Reply{.seq = 9}.to_nv()) == std::vector<std::string>{"seq"});
}

TEST_CASE("Messages: the first handshake packet, by hand", "[unit][proto]") {
  // A freshly started primary sends header version 1 while its nv says version 2.
  HelloRequest hello{.resource = "shared", .version = 2};
  CHECK(encode_frame(protocol_version_initial, hello.to_nv(), {}) ==
        raw({
            0x01, 0x34, 0x00, 0x00, 0x00,  // header v1, nv of 30 + 22 = 52 bytes
            // resource: string, namesize 9, dsize 7; "resource\0" + 7; "shared\0" + 1
            0x11, 0x09, 0x07, 0x00, 0x00, 0x00,              //
            0x72, 0x65, 0x73, 0x6f, 0x75, 0x72, 0x63, 0x65,  //
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  //
            0x73, 0x68, 0x61, 0x72, 0x65, 0x64, 0x00, 0x00,  //
            // version: uint8, namesize 8, dsize 1; "version\0"; 2
            0x02, 0x08, 0x01, 0x00, 0x00, 0x00,              //
            0x76, 0x65, 0x72, 0x73, 0x69, 0x6f, 0x6e, 0x00,  //
            0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  //
        }));
}

TEST_CASE("Messages: a status-all control request, by hand", "[unit][proto]") {
  ControlRequest status;
  status.cmd = ControlCommand::status;
  status.resources = {"all"};
  CHECK(encode_frame(2, status.to_nv(), {}) ==
        raw({
            0x02, 0x34, 0x00, 0x00, 0x00,  // v2, nv of 22 + 30 = 52 bytes
            // cmd: uint8 2 = STATUS
            0x02, 0x04, 0x01, 0x00, 0x00, 0x00,              //
            0x63, 0x6d, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00,  //
            0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  //
            // resource0: string, namesize 10, dsize 4; "resource0\0" + 6; "all\0" + 4
            0x11, 0x0a, 0x04, 0x00, 0x00, 0x00,              //
            0x72, 0x65, 0x73, 0x6f, 0x75, 0x72, 0x63, 0x65,  //
            0x30, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  //
            0x61, 0x6c, 0x6c, 0x00, 0x00, 0x00, 0x00, 0x00,  //
        }));
}

// ---- Handshake ----

TEST_CASE("Messages: field order of every handshake message", "[unit][proto]") {
  using V = std::vector<std::string>;
  CHECK(names(HelloRequest{.resource = "r"}.to_nv()) == V{"resource", "version"});
  CHECK(names(HelloReply{.token = test_token()}.to_nv()) == V{"version", "token"});
  CHECK(names(Refusal{.errmsg = "x", .wait = true}.to_nv()) == V{"errmsg", "wait"});
  CHECK(names(Refusal{.errmsg = "x"}.to_nv()) == V{"errmsg"});
  IdentityRequest identity{.resource = "r",
                           .token = test_token(),
                           .virgin = true,
                           .resuid = 1,
                           .local_count = 2,
                           .remote_count = 3,
                           .extensions = {.batch_flush = true, .request_size_max = 1 << 20}};
  CHECK(names(identity.to_nv()) == V{"resource", "token", "virgin", "resuid", "localcnt",
                                     "remotecnt", "ext_batchflush", "ext_maxrequest"});
  identity.virgin = false;
  identity.extensions = {};
  CHECK(names(identity.to_nv()) == V{"resource", "token", "resuid", "localcnt", "remotecnt"});
  AcceptReply accept{.datasize = 1 << 30,
                     .extentsize = 2 << 20,
                     .virgin = true,
                     .sync_source = SyncSource::secondary,
                     .mapsize = 4096,
                     .extensions = {.batch_flush = true, .request_size_max = {}}};
  CHECK(names(accept.to_nv()) == V{"datasize", "extentsize", "localcnt", "remotecnt", "virgin",
                                   "syncsrc", "mapsize", "ext_batchflush"});
  Nv nv = accept.to_nv();
  CHECK(nv.find("virgin")->type == NvType::int8);
  CHECK(nv.get_uint8("syncsrc") == 2);
  CHECK(nv.get_int64("datasize") == 1 << 30);
  CHECK(nv.get_int32("extentsize") == 2 << 20);
  CHECK(identity.to_nv().find("token")->type == NvType::uint8_array);
}

TEST_CASE("Messages: hello decoding defaults and errors", "[unit][proto]") {
  Nv nv;
  nv.add_string("resource", "shared");
  auto hello = HelloRequest::from_nv(nv);
  REQUIRE(hello.has_value());
  CHECK(hello->version == 1);  // absent reads as 1
  Nv zero = nv;
  zero.add_uint8("version", 0);
  CHECK(HelloRequest::from_nv(zero)->version == 1);
  Nv high = nv;
  high.add_uint8("version", 9);
  CHECK(HelloRequest::from_nv(high)->version == 9);  // the secondary negotiates min(9, 2)
  Nv mistyped = nv;
  mistyped.add_uint32("version", 2);
  require_error(HelloRequest::from_nv(mistyped), Errc::corruption,
                "hello: field 'version' is uint32, not uint8");
  require_error(HelloRequest::from_nv(Nv{}), Errc::corruption, "hello: missing field 'resource'");

  CHECK(hello_token(nv)->has_value() == false);
  Nv with_token = nv;
  with_token.add_uint8_array("token", test_token());
  CHECK(hello_token(with_token)->value() == test_token());
  Nv short_token = nv;
  std::uint8_t fifteen[15] = {};
  short_token.add_uint8_array("token", fifteen);
  require_error(hello_token(short_token), Errc::corruption, "token of 15 bytes, expected 16");
  Nv typed_token = nv;
  typed_token.add_uint64("token", 1);
  require_error(hello_token(typed_token), Errc::corruption, "'token' is uint64");
}

TEST_CASE("Messages: hello reply checks version and token", "[unit][proto]") {
  Nv nv;
  nv.add_uint8_array("token", test_token());
  CHECK(HelloReply::from_nv(nv)->version == 1);
  Nv v3;
  v3.add_uint8("version", 3);
  v3.add_uint8_array("token", test_token());
  require_error(HelloReply::from_nv(v3), Errc::unsupported, "Invalid version received (3).");
  Nv no_token;
  no_token.add_uint8("version", 2);
  require_error(HelloReply::from_nv(no_token), Errc::corruption, "missing field 'token'");
}

TEST_CASE("Messages: refusals and their exact errmsg strings", "[unit][proto]") {
  Nv nv;
  nv.add_string("errmsg", std::string(errmsg_split_brain));
  nv.add_int64("wait", 0);  // only existence matters
  CHECK(is_refusal(nv));
  auto refusal = Refusal::from_nv(nv);
  REQUIRE(refusal.has_value());
  CHECK(refusal->errmsg == "Split-brain condition!");
  CHECK(refusal->wait);
  CHECK_FALSE(is_refusal(HelloReply{.token = test_token()}.to_nv()));
  CHECK(errmsg_wrong_role(Role::primary) ==
        "Remote node acts as primary for the resource and not as secondary.");
  CHECK(errmsg_resuid_mismatch(12, 34) ==
        "Resource unique ID mismatch (primary=12, secondary=34).");
  CHECK(errmsg_not_configured == "Resource not configured.");
  CHECK(errmsg_no_access == "No access to the resource.");
  CHECK(errmsg_token_mismatch == "Token doesn't match.");
  require_error(Refusal::from_nv(Nv{}), Errc::corruption, "refusal: missing field 'errmsg'");
}

TEST_CASE("Messages: identity and accept decoding", "[unit][proto]") {
  IdentityRequest identity;
  identity.resource = "r";
  identity.token = test_token();
  identity.resuid = 5;
  Nv nv = identity.to_nv();
  nv.add_uint8("virgin", 1);  // any type counts, as FreeBSD tests existence
  auto decoded = IdentityRequest::from_nv(nv);
  REQUIRE(decoded.has_value());
  CHECK(decoded->virgin);
  CHECK(decoded->extensions == Extensions{});
  CHECK(request_size_send_max(decoded->extensions) == 128 * 1024);

  Nv big = identity.to_nv();
  big.add_uint32("ext_maxrequest", 8 << 20);  // more than we ever use: clamped
  CHECK(IdentityRequest::from_nv(big)->extensions.request_size_max == 1 << 20);
  CHECK(request_size_send_max(IdentityRequest::from_nv(big)->extensions) == 1 << 20);
  Nv tiny = identity.to_nv();
  tiny.add_uint32("ext_maxrequest", 4096);
  require_error(IdentityRequest::from_nv(tiny), Errc::corruption, "ext_maxrequest 4096");
  Nv no_resuid;
  no_resuid.add_string("resource", "r");
  no_resuid.add_uint8_array("token", test_token());
  require_error(IdentityRequest::from_nv(no_resuid), Errc::corruption,
                "identity: missing field 'resuid'");

  AcceptReply accept;
  accept.datasize = 1 << 20;
  accept.extentsize = 1 << 16;
  for (int source : {0, 3}) {
    Nv bad;
    for (const auto& e : accept.to_nv().elements()) {
      if (e.name == "syncsrc") {
        bad.add_uint8("syncsrc", static_cast<std::uint8_t>(source));
      } else {
        bad.add_raw(e.type, e.name, e.data);
      }
    }
    require_error(AcceptReply::from_nv(bad), Errc::corruption, "syncsrc");
  }
  Nv partial;
  partial.add_int64("datasize", 1);
  require_error(AcceptReply::from_nv(partial), Errc::corruption,
                "accept reply: missing field 'extentsize'");
}

// ---- Requests ----

TEST_CASE("Messages: request decoding follows FreeBSD's reading rules", "[unit][proto]") {
  auto request_with = [](std::function<void(Nv&)> fill) {
    Nv nv;
    fill(nv);
    return Request::from_nv(nv);
  };
  require_error(request_with([](Nv&) {}), Errc::corruption, "request: missing field 'cmd'");
  require_error(request_with([](Nv& nv) { nv.add_uint8("cmd", 0); }), Errc::corruption,
                "missing field 'cmd'");
  require_error(request_with([](Nv& nv) { nv.add_uint8("cmd", 6); }), Errc::corruption,
                "unknown cmd 6");
  require_error(request_with([](Nv& nv) { nv.add_uint32("cmd", 1); }), Errc::corruption,
                "field 'cmd' is uint32, not uint8");
  // KEEPALIVE ignores everything else.
  auto keepalive = request_with([](Nv& nv) {
    nv.add_uint8("cmd", 5);
    nv.add_string("seq", "junk");
  });
  REQUIRE(keepalive.has_value());
  CHECK(*keepalive == Request{.cmd = RequestCommand::keepalive});
  // READ without offset.
  require_error(request_with([](Nv& nv) {
                  nv.add_uint8("cmd", 1);
                  nv.add_uint64("seq", 3);
                  nv.add_uint64("length", 512);
                }),
                Errc::corruption, "request: missing field 'offset'");
  // FLUSH may lack offset and length; a missing seq reads as 0.
  auto flush = request_with([](Nv& nv) { nv.add_uint8("cmd", 4); });
  REQUIRE(flush.has_value());
  CHECK(flush->seq == 0);
  // memsync only counts on a WRITE, whatever its type.
  auto read = request_with([](Nv& nv) {
    for (const auto& e : Request{RequestCommand::read, 1, 0, 512}.to_nv().elements())
      nv.add_raw(e.type, e.name, e.data);
    nv.add_string("memsync", "yes");
  });
  REQUIRE(read.has_value());
  CHECK_FALSE(read->memsync);
  auto write = request_with([](Nv& nv) {
    for (const auto& e : Request{RequestCommand::write, 1, 0, 512}.to_nv().elements())
      nv.add_raw(e.type, e.name, e.data);
    nv.add_string("memsync", "yes");
  });
  CHECK(write->memsync);
}

TEST_CASE("Messages: validate_request applies every rule of requnpack", "[unit][proto]") {
  constexpr std::uint64_t datasize = 1 << 20;
  constexpr std::uint32_t max = 128 * 1024;
  auto check = [](Request r, const std::string& reason) {
    auto result = validate_request(r, 512, datasize, max);
    if (reason.empty()) {
      CHECK(result.has_value());
      return;
    }
    require_error(result, Errc::invalid_argument, reason);
  };
  using C = RequestCommand;
  check({C::keepalive}, "");
  check({C::read, 0, 0, 512}, "no 'seq' field");
  check({C::flush, 0}, "no 'seq' field");
  check({C::flush, 4, 12345, 0}, "");  // FLUSH fields are not checked
  check({C::read, 1, 0, 512}, "");     // sync requests use seq 1
  check({C::write, 2, 0, 0}, "data length is zero");
  check({C::discard, 2, 0, 0}, "data length is zero");
  check({C::read, 2, 0, max}, "");
  check({C::read, 2, 0, max + 512}, "data length 131584 over the limit of 131072");
  check({C::write, 2, 0, max + 512}, "over the limit");
  check({C::discard, 2, 0, datasize}, "");  // DELETE is unlimited
  check({C::write, 2, 100, 512}, "offset 100 not a multiple of the sector size 512");
  check({C::write, 2, 512, 100}, "length 100 not a multiple");
  check({C::write, 2, datasize - 512, 512}, "");
  check({C::write, 2, datasize, 512}, "past the data size");
  check({C::discard, 2, 512, datasize}, "past the data size");
  // offset + length overflows 64 bits: FreeBSD's sum wraps and passes; ours rejects.
  check({C::discard, 2, std::numeric_limits<std::uint64_t>::max() - 511, 1024},
        "past the data size");
  auto named = validate_request({C::write, 42, 100, 512}, 512, datasize, max);
  CHECK(named.error().context().find("WRITE request (seq 42)") == 0);
}

TEST_CASE("Messages: reply decoding", "[unit][proto]") {
  Nv nv;
  nv.add_uint64("seq", 0);
  require_error(Reply::from_nv(nv), Errc::corruption, "reply: seq 0");
  require_error(Reply::from_nv(Nv{}), Errc::corruption, "reply: missing field 'seq'");
  Nv both = Reply{.seq = 3, .received = true}.to_nv();
  both.add_int16("error", 5);
  require_error(Reply::from_nv(both), Errc::corruption, "'received' with an error");
  Nv typed = Reply{.seq = 3}.to_nv();
  typed.add_int32("error", 5);
  require_error(Reply::from_nv(typed), Errc::corruption, "field 'error' is int32, not int16");
  Nv received = Reply{.seq = 3}.to_nv();
  received.add_string("received", "any type");
  CHECK(Reply::from_nv(received)->received);
}

TEST_CASE("Messages: errno values are FreeBSD's", "[unit][proto]") {
  CHECK(wire_errno_from_errc(Errc::io) == 5);
  CHECK(wire_errno_from_errc(Errc::invalid_argument) == 22);
  CHECK(wire_errno_from_errc(Errc::no_space) == 28);
  CHECK(wire_errno_from_errc(Errc::unsupported) == 45);  // Linux would say 95
  CHECK(wire_errno_from_errc(Errc::disconnected) == 57);
  for (auto code : {Errc::io, Errc::corruption, Errc::not_found, Errc::disconnected,
                    Errc::timed_out, Errc::no_space, Errc::invalid_argument, Errc::cancelled,
                    Errc::unsupported, Errc::refused, Errc::busy}) {
    CHECK(errc_from_wire_errno(wire_errno_from_errc(code)) == code);
  }
  CHECK(wire_errno_from_errc(Errc::split_brain) == wire_errno::eio);
  CHECK(errc_from_wire_errno(wire_errno::enxio) == Errc::io);
  CHECK(errc_from_wire_errno(1234) == Errc::io);
}

// ---- Control ----

TEST_CASE("Messages: control request errors in FreeBSD's order", "[unit][proto]") {
  require_error(ControlRequest::from_nv(Nv{}), Errc::corruption, "missing field 'cmd'");
  CHECK_FALSE(control_reply_error(ControlRequest::from_nv(Nv{}).error()).has_value());

  Nv no_role;
  no_role.add_uint8("cmd", 1);
  no_role.add_string("resource0", "r");
  auto invalid = ControlRequest::from_nv(no_role);
  require_error(invalid, Errc::invalid_argument, "invalid role 0");
  CHECK(control_reply_error(invalid.error()) == ehast_invalid);
  Nv bad_role = no_role;
  bad_role = Nv{};
  bad_role.add_uint8("cmd", 1);
  bad_role.add_uint8("role", 4);
  require_error(ControlRequest::from_nv(bad_role), Errc::invalid_argument, "invalid role 4");

  Nv no_resource;
  no_resource.add_uint8("cmd", 2);
  require_error(ControlRequest::from_nv(no_resource), Errc::invalid_argument, "'resource0'");
  Nv unknown;
  unknown.add_uint8("cmd", 9);
  require_error(ControlRequest::from_nv(unknown), Errc::invalid_argument, "'resource0'");
  unknown.add_string("resource0", "all");
  auto unimplemented = ControlRequest::from_nv(unknown);
  require_error(unimplemented, Errc::unsupported, "unknown cmd 9");
  CHECK(control_reply_error(unimplemented.error()) == ehast_unimplemented);

  Nv list;
  list.add_uint8("cmd", 1);
  list.add_uint8("role", 2);
  list.add_string("resource0", "a");
  list.add_string("resource1", "b");
  list.add_uint8("resource2", 1);  // mistyped: the list ends here, as in FreeBSD
  list.add_string("resource3", "d");
  auto request = ControlRequest::from_nv(list);
  REQUIRE(request.has_value());
  CHECK(request->role == Role::primary);
  CHECK(request->resources == std::vector<std::string>{"a", "b"});
  // A status request's role is ignored.
  Nv status;
  status.add_uint8("cmd", 2);
  status.add_uint8("role", 2);
  status.add_string("resource0", "all");
  CHECK_FALSE(ControlRequest::from_nv(status)->role.has_value());
}

TEST_CASE("Messages: set-role reply layout", "[unit][proto]") {
  SetRoleReply reply{.resources = {{.resource = "a", .error = 0, .previous_role = Role::init},
                                   {.resource = "b", .error = ehast_noentry, .previous_role = {}}},
                     .error = ehast_noentry};
  Nv nv = reply.to_nv();
  CHECK(names(nv) ==
        std::vector<std::string>{"resource0", "role0", "resource1", "error1", "error"});
  CHECK(nv.get_string("role0") == "init");
  CHECK(nv.find("error1")->type == NvType::int16);
  CHECK(*SetRoleReply::from_nv(nv) == reply);
  // Never an empty nv: an empty reply carries error 0.
  Nv empty = SetRoleReply{}.to_nv();
  CHECK(names(empty) == std::vector<std::string>{"error"});
  CHECK(empty.get_int16("error") == 0);
  Nv bad;
  bad.add_string("resource0", "a");
  bad.add_string("role0", "leader");
  require_error(SetRoleReply::from_nv(bad), Errc::corruption, "not a role: 'leader'");
}

TEST_CASE("Messages: status reply fields in wire order with their types", "[unit][proto]") {
  WorkerStatus worker{.status = "complete",
                      .dirty = 4 << 20,
                      .extentsize = 2 << 20,
                      .keepdirty = 64,
                      .idle_queue_size = 255};
  ResourceStatus full{.resource = "shared",
                      .provname = "shared",
                      .localpath = "/dev/da0",
                      .remoteaddr = "tcp://10.0.0.2",
                      .sourceaddr = "tcp://10.0.0.1",
                      .replication = "memsync",
                      .checksum = "crc32",
                      .compression = "hole",
                      .role = Role::primary,
                      .workerpid = 1234,
                      .worker = worker};
  ResourceStatus unknown;
  unknown.resource = "other";
  unknown.error = ehast_noentry;
  StatusReply reply{.resources = {full, unknown}};
  Nv nv = reply.to_nv();
  CHECK(names(nv) == std::vector<std::string>{"resource0",
                                              "provname0",
                                              "localpath0",
                                              "remoteaddr0",
                                              "sourceaddr0",
                                              "replication0",
                                              "checksum0",
                                              "compression0",
                                              "role0",
                                              "workerpid0",
                                              "status0",
                                              "dirty0",
                                              "extentsize0",
                                              "keepdirty0",
                                              "stat_read0",
                                              "stat_write0",
                                              "stat_delete0",
                                              "stat_flush0",
                                              "stat_activemap_update0",
                                              "stat_read_error0",
                                              "stat_write_error0",
                                              "stat_delete_error0",
                                              "stat_flush_error0",
                                              "idle_queue_size0",
                                              "local_queue_size0",
                                              "send_queue_size0",
                                              "recv_queue_size0",
                                              "done_queue_size0",
                                              "resource1",
                                              "error1"});
  CHECK(nv.find("workerpid0")->type == NvType::int32);
  CHECK(nv.find("dirty0")->type == NvType::uint64);
  CHECK(nv.find("extentsize0")->type == NvType::uint32);
  CHECK(nv.find("keepdirty0")->type == NvType::uint32);
  CHECK(nv.find("stat_read0")->type == NvType::uint64);
  CHECK(nv.find("error1")->type == NvType::int16);
  CHECK(nv.get_string("role0") == "primary");
  CHECK(*StatusReply::from_nv(nv) == reply);

  // No worker, no sourceaddr; a top-level error goes last.
  full.worker.reset();
  full.sourceaddr.reset();
  StatusReply partial{.resources = {full}, .error = 2};
  Nv partial_nv = partial.to_nv();
  CHECK(names(partial_nv).back() == "error");
  CHECK(names(partial_nv).size() == 10);
  CHECK(*StatusReply::from_nv(partial_nv) == partial);
  CHECK(names(StatusReply{}.to_nv()) == std::vector<std::string>{"error"});
  auto empty = StatusReply::from_nv(StatusReply{}.to_nv());
  REQUIRE(empty.has_value());
  CHECK(empty->resources.empty());

  Nv missing = partial_nv;
  missing = Nv{};
  missing.add_string("resource0", "x");
  missing.add_string("provname0", "x");
  require_error(StatusReply::from_nv(missing), Errc::corruption,
                "status reply: missing field 'localpath0'");
}

// ---- Properties ----

TEST_CASE("Messages: every message round-trips through its nv", "[unit][proto]") {
  hast::test::property("handshake round trip", [] {
    HelloRequest hello{*gen_text(), *rc::gen::inRange<std::uint8_t>(1, 255)};
    RC_ASSERT(*HelloRequest::from_nv(hello.to_nv()) == hello);
    HelloReply reply{*rc::gen::inRange<std::uint8_t>(1, 3), gen_token()};
    RC_ASSERT(*HelloReply::from_nv(reply.to_nv()) == reply);
    Refusal refusal{*gen_text(), *rc::gen::arbitrary<bool>()};
    RC_ASSERT(*Refusal::from_nv(refusal.to_nv()) == refusal);
    IdentityRequest identity{*gen_text(),
                             gen_token(),
                             *rc::gen::arbitrary<bool>(),
                             *rc::gen::arbitrary<std::uint64_t>(),
                             *rc::gen::arbitrary<std::uint64_t>(),
                             *rc::gen::arbitrary<std::uint64_t>(),
                             gen_extensions()};
    RC_ASSERT(*IdentityRequest::from_nv(identity.to_nv()) == identity);
    AcceptReply accept{*rc::gen::arbitrary<std::int64_t>(),
                       *rc::gen::arbitrary<std::int32_t>(),
                       *rc::gen::arbitrary<std::uint64_t>(),
                       *rc::gen::arbitrary<std::uint64_t>(),
                       *rc::gen::arbitrary<bool>(),
                       *rc::gen::element(SyncSource::primary, SyncSource::secondary),
                       *rc::gen::arbitrary<std::uint32_t>(),
                       gen_extensions()};
    RC_ASSERT(*AcceptReply::from_nv(accept.to_nv()) == accept);
  });
  hast::test::property("request and reply round trip", [] {
    Request request = gen_request();
    RC_ASSERT(*Request::from_nv(request.to_nv()) == request);
    Reply reply{*rc::gen::inRange<std::uint64_t>(1, std::numeric_limits<std::uint64_t>::max()),
                *rc::gen::arbitrary<bool>(), 0};
    if (!reply.received && *rc::gen::arbitrary<bool>()) reply.error = gen_nonzero_int16();
    RC_ASSERT(*Reply::from_nv(reply.to_nv()) == reply);
  });
  hast::test::property("control round trip", [] {
    ControlRequest request;
    request.cmd = *rc::gen::element(ControlCommand::set_role, ControlCommand::status);
    if (request.cmd == ControlCommand::set_role) request.role = gen_role(true);
    request.resources =
        *rc::gen::nonEmpty(rc::gen::container<std::vector<std::string>>(gen_text()));
    RC_ASSERT(*ControlRequest::from_nv(request.to_nv()) == request);

    SetRoleReply set_role;
    auto count = *rc::gen::inRange(0, 5);
    for (int i = 0; i < count; i++) {
      SetRoleResult result;
      result.resource = *gen_text();
      if (*rc::gen::arbitrary<bool>()) {
        result.error = gen_nonzero_int16();
      } else {
        result.previous_role = gen_role(false);
      }
      set_role.resources.push_back(result);
    }
    set_role.error = *rc::gen::arbitrary<std::int16_t>();
    RC_ASSERT(*SetRoleReply::from_nv(set_role.to_nv()) == set_role);

    StatusReply status;
    status.resources =
        *rc::gen::container<std::vector<ResourceStatus>>(rc::gen::exec(gen_resource_status));
    status.error = *rc::gen::arbitrary<std::int16_t>();
    RC_ASSERT(*StatusReply::from_nv(status.to_nv()) == status);
  });
}

TEST_CASE("Messages: random nvs never crash a decoder", "[unit][proto]") {
  hast::test::property(
      "messages random nv", [] { check_every_decoder(gen_nv()); }, 500);
}

TEST_CASE("Messages: mutated valid messages decode or fail cleanly", "[unit][proto]") {
  hast::test::property(
      "messages mutated nv",
      [] {
        std::vector<Nv> valid = {
            HelloRequest{"r", 2}.to_nv(),
            HelloReply{2, gen_token()}.to_nv(),
            IdentityRequest{"r", gen_token(), true, 1, 2, 3, gen_extensions()}.to_nv(),
            AcceptReply{1 << 20, 1 << 16, 1, 2, true, SyncSource::primary, 64, gen_extensions()}
                .to_nv(),
            gen_request().to_nv(),
            Reply{5, true, 0}.to_nv(),
            ControlRequest{ControlCommand::set_role, Role::secondary, {"a", "b"}}.to_nv(),
            StatusReply{{gen_resource_status(), gen_resource_status()}, 0}.to_nv(),
        };
        check_every_decoder(mutate(*rc::gen::elementOf(valid)));
      },
      2000);
}
