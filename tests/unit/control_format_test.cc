// hastctl's output (reference/hast-spec.md §3.4–§3.7): golden strings written by hand from
// the spec's examples and layout descriptions, humanize_number against FreeBSD's
// algorithm worked by hand, JSON with its escaping, the status model (core status → wire
// status, sync ETA) and the control protocol's extensions (force, stop, sync progress).
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "core/control/format.h"
#include "core/control/json.h"
#include "core/control/status.h"
#include "core/proto/control_messages.h"

using namespace hast::control;
using hast::proto::ResourceStatus;
using hast::proto::Role;
using hast::proto::SetRoleReply;
using hast::proto::StatusReply;
using hast::proto::WorkerStatus;

namespace {

// The spec's §3.4/§3.5 example resource: a connected primary.
ResourceStatus shared_primary() {
  WorkerStatus worker{.status = "complete",
                      .dirty = 0,
                      .extentsize = 2097152,
                      .keepdirty = 64,
                      .stat_read = 19,
                      .stat_write = 2,
                      .stat_activemap_update = 1,
                      .idle_queue_size = 255};
  ResourceStatus entry;
  entry.resource = "shared";
  entry.provname = "shared";
  entry.localpath = "/dev/da0";
  entry.remoteaddr = "tcp://10.0.0.2";
  entry.sourceaddr = "tcp://10.0.0.1";
  entry.replication = "memsync";
  entry.checksum = "none";
  entry.compression = "hole";
  entry.role = Role::primary;
  entry.workerpid = 12345;
  entry.worker = worker;
  return entry;
}

ResourceStatus plain(std::string name, std::string local, std::string status, Role role) {
  ResourceStatus entry;
  entry.resource = name;
  entry.provname = name;
  entry.localpath = local;
  entry.remoteaddr = "tcp://10.0.0.2";
  entry.replication = "memsync";
  entry.checksum = "none";
  entry.compression = "hole";
  entry.role = role;
  if (status != "-") entry.worker = WorkerStatus{.status = status};
  return entry;
}

ResourceStatus unknown(std::string name) {
  ResourceStatus entry;
  entry.resource = name;
  entry.error = hast::proto::ehast_noentry;
  return entry;
}

}  // namespace

TEST_CASE("Control format: humanize_number as FreeBSD's, worked by hand", "[unit][control]") {
  CHECK(humanize_number(0) == "0");
  CHECK(humanize_number(1) == "1");
  CHECK(humanize_number(999) == "999");
  CHECK(humanize_number(1000) == "1.0K");  // 1000 / 1024 rounds to 1.0
  CHECK(humanize_number(1023) == "1.0K");
  CHECK(humanize_number(1024) == "1.0K");
  CHECK(humanize_number(1536) == "1.5K");
  CHECK(humanize_number(9 * 1024 + 972) == "9.9K");  // below the 0.95 cut: one decimal
  CHECK(humanize_number(9 * 1024 + 1023) == "10K");  // at or above it: rounded, no decimal
  CHECK(humanize_number(999 * 1024) == "999K");
  CHECK(humanize_number(999 * 1024 + 600) == "1.0M");  // 999.6K would print as 1000K
  CHECK(humanize_number(2097152) == "2.0M");           // spec §3.5: "2.0MB"
  CHECK(humanize_number(10737413120ULL) == "10G");     // spec §3.6: "10GB"
  CHECK(humanize_number(5ULL << 30) == "5.0G");
  CHECK(humanize_number(1ULL << 40) == "1.0T");
  CHECK(humanize_number(~0ULL) == "16E");
}

TEST_CASE("Control format: durations", "[unit][control]") {
  CHECK(format_duration(0) == "0s");
  CHECK(format_duration(59) == "59s");
  CHECK(format_duration(185) == "3m05s");
  CHECK(format_duration(3723) == "1h02m03s");
  CHECK(format_duration(2 * 86400 + 3 * 3600 + 4 * 60 + 5) == "2d03h04m05s");
}

TEST_CASE("Control format: status table as spec §3.4", "[unit][control]") {
  StatusReply reply;
  reply.resources = {plain("shared", "/dev/da0", "complete", Role::primary),
                     plain("tank", "/dev/mirror/tanka", "degraded", Role::primary),
                     plain("test", "/dev/ada1p1", "-", Role::init), unknown("other")};
  CHECK(format_status(reply) ==
        "Name\tStatus\t Role\t\tComponents\n"
        "shared\tcomplete primary        /dev/da0\ttcp://10.0.0.2\n"
        "tank\tdegraded primary        /dev/mirror/tanka\ttcp://10.0.0.2\n"
        "test\t-        init           /dev/ada1p1\ttcp://10.0.0.2\n"
        "other\tERR1\n");
  CHECK(reply_exit_code(reply) == 1);
  // Never truncated: a long status or role pushes the next column.
  StatusReply secondary{{plain("r", "/d", "complete", Role::secondary)}, 0};
  CHECK(format_status(secondary) ==
        "Name\tStatus\t Role\t\tComponents\n"
        "r\tcomplete secondary      /d\ttcp://10.0.0.2\n");
  CHECK(reply_exit_code(secondary) == 0);
}

TEST_CASE("Control format: no resources print nothing and exit 0", "[unit][control]") {
  StatusReply empty;
  CHECK(format_status(empty).empty());
  CHECK(format_list(empty).empty());
  CHECK(reply_exit_code(empty) == 0);
  CHECK(format_status_json(empty) == "{\n  \"resources\": []\n}\n");
}

TEST_CASE("Control format: list as spec §3.5", "[unit][control]") {
  StatusReply reply{{shared_primary()}, 0};
  CHECK(format_list(reply) ==
        "shared:\n"
        "  role: primary\n"
        "  provname: shared\n"
        "  localpath: /dev/da0\n"
        "  extentsize: 2097152 (2.0MB)\n"
        "  keepdirty: 64\n"
        "  remoteaddr: tcp://10.0.0.2\n"
        "  sourceaddr: tcp://10.0.0.1\n"
        "  replication: memsync\n"
        "  status: complete\n"
        "  workerpid: 12345\n"
        "  dirty: 0 (0B)\n"
        "  statistics:\n"
        "    reads: 19\n"
        "    writes: 2\n"
        "    deletes: 0\n"
        "    flushes: 0\n"
        "    activemap updates: 1\n"
        "    local errors: read: 0, write: 0, delete: 0, flush: 0\n"
        "    queues: local: 0, send: 0, recv: 0, done: 0, idle: 255\n");
}

TEST_CASE("Control format: list without a worker, with an error", "[unit][control]") {
  StatusReply reply{{plain("test", "/dev/ada1p1", "-", Role::init), unknown("other")}, 0};
  CHECK(format_list(reply) ==
        "test:\n"
        "  role: init\n"
        "  provname: test\n"
        "  localpath: /dev/ada1p1\n"
        "  extentsize: 0 (0B)\n"
        "  keepdirty: 0\n"
        "  remoteaddr: tcp://10.0.0.2\n"
        "  replication: memsync\n"
        "  dirty: 0 (0B)\n"
        "  statistics:\n"
        "    reads: 0\n"
        "    writes: 0\n"
        "    deletes: 0\n"
        "    flushes: 0\n"
        "    activemap updates: 0\n"
        "    local errors: read: 0, write: 0, delete: 0, flush: 0\n"
        "    queues: local: 0, send: 0, recv: 0, done: 0, idle: 0\n"
        "other:\n"
        "  error: 1\n");
  CHECK(reply_exit_code(reply) == 1);
}

TEST_CASE("Control format: list shows the inconsistent flag and a running sync",
          "[unit][control]") {
  ResourceStatus status = shared_primary();
  status.workerpid = 0;
  status.sourceaddr.reset();
  status.worker->dirty = 8 << 20;
  status.inconsistent = true;
  status.sync = hast::proto::SyncStatus{
      .running = true, .done = 2 << 20, .total = 8 << 20, .eta_seconds = 75};
  std::string text = format_list(StatusReply{{status}, 0});
  CHECK(text.find("  dirty: 8388608 (8.0MB)\n"
                  "  inconsistent: yes\n"
                  "  sync: 25% (2.0MB of 8.0MB), eta: 1m15s\n"
                  "  statistics:\n") != std::string::npos);
  // A finished sync prints nothing; an unknown ETA is left out.
  status.inconsistent = false;
  status.sync->eta_seconds.reset();
  CHECK(format_list(StatusReply{{status}, 0}).find("  sync: 25% (2.0MB of 8.0MB)\n") !=
        std::string::npos);
  status.sync->running = false;
  CHECK(format_list(StatusReply{{status}, 0}).find("  sync:") == std::string::npos);
}

TEST_CASE("Control format: dump as spec §3.6", "[unit][control]") {
  hast::meta::Metadata metadata{.resource = "shared",
                                .data_size_bytes = 10737413120ULL,
                                .extent_size_bytes = 2097152,
                                .keep_dirty = 64,
                                .local_offset_bytes = 5120,
                                .resuid = 1234567890123456789ULL,
                                .local_count = 0,
                                .remote_count = 0,
                                .prev_role = hast::meta::Role::primary,
                                .stale_extents = {}};
  CHECK(format_dump(metadata) ==
        "resource: shared\n"
        "    datasize: 10737413120 (10GB)\n"
        "    extentsize: 2097152 (2.0MB)\n"
        "    keepdirty: 64\n"
        "    localoff: 5120\n"
        "    resuid: 1234567890123456789\n"
        "    localcnt: 0\n"
        "    remotecnt: 0\n"
        "    prevrole: primary\n");
  metadata.inconsistent = true;
  metadata.stale_extents = {hast::meta::ExtentIndex{3}, hast::meta::ExtentIndex{17}};
  CHECK(
      format_dump(metadata).ends_with("    prevrole: primary\n"
                                      "    inconsistent: yes\n"
                                      "    stale: 3, 17\n"));
}

TEST_CASE("Control format: role diagnostics and exit codes", "[unit][control]") {
  SetRoleReply reply{
      {{.resource = "a", .error = 0, .previous_role = Role::init},
       {.resource = "b", .error = 1, .previous_role = {}},
       {.resource = "c", .error = hast::proto::ehast_inconsistent, .previous_role = {}}},
      0};
  CHECK(format_set_role_warnings(reply) ==
        "[WARNING] [b] Received error 1 from hastd.\n"
        "[WARNING] [c] Received error 101 from hastd (the local component is inconsistent: a "
        "synchronisation to it did not complete; use --force).\n");
  CHECK(reply_exit_code(reply) == 1);  // the first error
  reply.error = 4;
  CHECK(reply_exit_code(reply) == exit_software);
  CHECK(format_reply_error(4) == "[ERROR] Error 4 received from hastd.\n");
  CHECK(format_error("Unable to connect to hastd via /x: Connection refused.") ==
        "[ERROR] Unable to connect to hastd via /x: Connection refused.\n");
  CHECK(format_set_role_warnings(SetRoleReply{}).empty());
  CHECK(reply_exit_code(SetRoleReply{}) == exit_ok);
  StatusReply status{{plain("r", "/d", "-", Role::init)}, 2};
  CHECK(reply_exit_code(status) == exit_software);
}

TEST_CASE("Control format: JSON strings are escaped and valid UTF-8", "[unit][control]") {
  CHECK(json_string("") == "\"\"");
  CHECK(json_string("plain /dev/da0") == "\"plain /dev/da0\"");
  CHECK(json_string("a\"b\\c") == "\"a\\\"b\\\\c\"");
  CHECK(json_string("\b\f\n\r\t") == "\"\\b\\f\\n\\r\\t\"");
  CHECK(json_string(std::string("\x01\x1f\x7f", 3)) == "\"\\u0001\\u001f\x7f\"");
  CHECK(json_string(std::string("nul\0in", 6)) == "\"nul\\u0000in\"");
  // Valid UTF-8 passes through: é, €, U+1F600.
  CHECK(json_string("\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80") ==
        "\"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\"");
  // Invalid bytes become U+FFFD, one per byte that starts no valid sequence.
  const std::string bad = "\xEF\xBF\xBD";
  CHECK(json_string("\xFF") == "\"" + bad + "\"");
  CHECK(json_string("\xC0\xAF") == "\"" + bad + bad + "\"");                      // overlong
  CHECK(json_string("\xED\xA0\x80") == "\"" + bad + bad + bad + "\"");            // surrogate
  CHECK(json_string("\xE2\x82") == "\"" + bad + bad + "\"");                      // truncated
  CHECK(json_string("\xF4\x90\x80\x80") == "\"" + bad + bad + bad + bad + "\"");  // > U+10FFFF
  CHECK(json_string("x\xE2\x82\xACy\x80z") == "\"x\xE2\x82\xACy" + bad + "z\"");
}

TEST_CASE("Control format: status JSON uses the protocol's field names", "[unit][control]") {
  ResourceStatus status = plain("sh\"ared", "/dev/da0", "complete", Role::primary);
  status.sourceaddr = "tcp://10.0.0.1";
  status.worker->extentsize = 2097152;
  status.worker->keepdirty = 64;
  status.worker->idle_queue_size = 255;
  status.sync = hast::proto::SyncStatus{.running = true, .done = 1, .total = 4, .eta_seconds = 9};
  ResourceStatus init = plain("test", "/dev/ada1p1", "-", Role::init);
  init.inconsistent = true;
  StatusReply reply{{status, init, unknown("other")}, 0};
  CHECK(format_status_json(reply) ==
        R"({
  "resources": [
    {
      "resource": "sh\"ared",
      "provname": "sh\"ared",
      "localpath": "/dev/da0",
      "remoteaddr": "tcp://10.0.0.2",
      "sourceaddr": "tcp://10.0.0.1",
      "replication": "memsync",
      "checksum": "none",
      "compression": "hole",
      "role": "primary",
      "workerpid": 0,
      "status": "complete",
      "dirty": 0,
      "extentsize": 2097152,
      "keepdirty": 64,
      "stat_read": 0,
      "stat_write": 0,
      "stat_delete": 0,
      "stat_flush": 0,
      "stat_activemap_update": 0,
      "stat_read_error": 0,
      "stat_write_error": 0,
      "stat_delete_error": 0,
      "stat_flush_error": 0,
      "idle_queue_size": 255,
      "local_queue_size": 0,
      "send_queue_size": 0,
      "recv_queue_size": 0,
      "done_queue_size": 0,
      "inconsistent": false,
      "sync": {
        "running": true,
        "done": 1,
        "total": 4,
        "eta_seconds": 9
      }
    },
    {
      "resource": "test",
      "provname": "test",
      "localpath": "/dev/ada1p1",
      "remoteaddr": "tcp://10.0.0.2",
      "replication": "memsync",
      "checksum": "none",
      "compression": "hole",
      "role": "init",
      "workerpid": 0,
      "inconsistent": true
    },
    {
      "resource": "other",
      "error": 1
    }
  ]
}
)");
  StatusReply failed{{}, 2};
  CHECK(format_status_json(failed) == "{\n  \"resources\": [],\n  \"error\": 2\n}\n");
}

TEST_CASE("Control status model: a core status becomes the wire's", "[unit][control]") {
  using namespace std::chrono_literals;
  hast::config::ResourceConfig config;
  config.name = "shared";
  config.checksum = hast::proto::Checksum::crc32;
  config.compression = hast::proto::Compression::lzf;
  hast::replication::ResourceStatus core;
  core.name = "shared";
  core.role = hast::meta::Role::primary;
  core.status = "degraded";
  core.provider_name = "shared";
  core.local_path = "/dev/sim";
  core.remote = "tcp://10.0.0.2";
  core.replication = hast::config::ReplicationMode::fullsync;
  core.dirty_bytes = 3 << 20;
  core.extent_size = 1 << 20;
  core.keep_dirty = 8;
  core.activemap_updates = 5;
  core.requests_in_flight = 6;
  core.primary.reads = 7;
  core.primary.write_errors = 1;
  core.inconsistent = true;
  hast::Instant start{};
  core.sync = {.running = true, .synced_bytes = 1 << 20, .total_bytes = 4 << 20, .started = start};

  ResourceStatus wire = wire_status(core, config, start + 10s);
  CHECK(wire.resource == "shared");
  CHECK(wire.remoteaddr == "tcp://10.0.0.2");
  CHECK_FALSE(wire.sourceaddr.has_value());
  CHECK(wire.replication == "fullsync");
  CHECK(wire.checksum == "crc32");
  CHECK(wire.compression == "lzf");
  CHECK(wire.role == Role::primary);
  CHECK(wire.workerpid == 0);
  REQUIRE(wire.worker.has_value());
  CHECK(wire.worker->status == "degraded");
  CHECK(wire.worker->dirty == 3 << 20);
  CHECK(wire.worker->extentsize == 1 << 20);
  CHECK(wire.worker->keepdirty == 8);
  CHECK(wire.worker->stat_activemap_update == 5);
  CHECK(wire.worker->stat_read == 7);
  CHECK(wire.worker->stat_write_error == 1);
  CHECK(wire.worker->idle_queue_size == hast::replication::request_count_max - 6);
  CHECK(wire.inconsistent);
  REQUIRE(wire.sync.has_value());
  CHECK(wire.sync->done == 1 << 20);
  CHECK(wire.sync->total == 4 << 20);
  CHECK(wire.sync->eta_seconds == 30u);  // 1 MiB in 10 s, 3 MiB to go

  // No worker: an init resource; a secondary has no sync progress.
  core.role = hast::meta::Role::init;
  core.status = "-";
  core.source = "tcp://10.0.0.1";
  wire = wire_status(core, config, start + 10s);
  CHECK_FALSE(wire.worker.has_value());
  CHECK_FALSE(wire.sync.has_value());
  CHECK(wire.sourceaddr == "tcp://10.0.0.1");
  core.role = hast::meta::Role::secondary;
  core.status = "complete";
  wire = wire_status(core, config, start + 10s);
  CHECK(wire.worker->idle_queue_size == 0);
  CHECK_FALSE(wire.sync.has_value());
}

TEST_CASE("Control status model: the sync ETA", "[unit][control]") {
  using namespace std::chrono_literals;
  hast::Instant start = hast::Instant{} + 5s;
  hast::replication::SyncProgress sync{
      .running = true, .synced_bytes = 0, .total_bytes = 100, .started = start};
  CHECK_FALSE(sync_eta_seconds(sync, start + 1s).has_value());  // nothing copied yet
  sync.synced_bytes = 30;
  CHECK_FALSE(sync_eta_seconds(sync, start).has_value());  // no time passed
  CHECK(sync_eta_seconds(sync, start + 3s) == 7u);
  CHECK(sync_eta_seconds(sync, start + 3001ms) == 8u);  // rounded up
  sync.synced_bytes = 120;                              // marks made during the sync
  CHECK(sync_eta_seconds(sync, start + 3s) == 0u);
  sync.running = false;
  CHECK_FALSE(sync_eta_seconds(sync, start + 3s).has_value());
}

TEST_CASE("Control protocol extensions: force, stop, sync progress", "[unit][control]") {
  using hast::proto::ControlCommand;
  using hast::proto::ControlRequest;
  ControlRequest force{ControlCommand::set_role, Role::primary, {"shared"}, true};
  hast::proto::Nv nv = force.to_nv();
  CHECK(nv.get_uint8("force") == 1);
  CHECK(*ControlRequest::from_nv(nv) == force);
  force.force = false;
  CHECK_FALSE(force.to_nv().exists("force"));  // FreeBSD's request, byte for byte

  ControlRequest stop{ControlCommand::stop, std::nullopt, {"all"}, false};
  CHECK(stop.to_nv().get_uint8("cmd") == 100);
  CHECK(*ControlRequest::from_nv(stop.to_nv()) == stop);
  // A status request's `force` is not read.
  hast::proto::Nv status;
  status.add_uint8("cmd", 2);
  status.add_string("resource0", "all");
  status.add_uint8("force", 1);
  CHECK_FALSE(ControlRequest::from_nv(status)->force);

  ResourceStatus entry = shared_primary();
  entry.inconsistent = true;
  entry.sync = hast::proto::SyncStatus{.running = true, .done = 1, .total = 2, .eta_seconds = 3};
  entry.metadata_copy = "second";
  hast::proto::Nv reply = StatusReply{{entry}, 0}.to_nv();
  CHECK(reply.get_uint8("inconsistent0") == 1);
  CHECK(reply.get_string("metacopy0") == "second");
  CHECK(reply.get_uint64("sync_eta0") == 3u);
  CHECK(StatusReply::from_nv(reply)->resources.at(0) == entry);
  entry.inconsistent = false;
  entry.sync.reset();
  entry.metadata_copy.reset();
  hast::proto::Nv freebsd = StatusReply{{entry}, 0}.to_nv();
  CHECK_FALSE(freebsd.exists("inconsistent0"));
  CHECK_FALSE(freebsd.exists("sync_total0"));
  CHECK_FALSE(freebsd.exists("metacopy0"));
  // A FreeBSD daemon's reply reads as no copy known.
  CHECK_FALSE(StatusReply::from_nv(freebsd)->resources.at(0).metadata_copy.has_value());
}

// The metadata copy a component was opened from: `list` says so only for the second copy
// (a metadata write was interrupted), so a normal resource's text stays FreeBSD's; JSON
// always carries what the daemon reported.
TEST_CASE("Control format: the metadata copy in list, JSON and the status model",
          "[unit][control]") {
  ResourceStatus status = shared_primary();
  std::string freebsd = format_list(StatusReply{{status}, 0});
  status.metadata_copy = "first";
  CHECK(format_list(StatusReply{{status}, 0}) == freebsd);
  CHECK(format_status_json(StatusReply{{status}, 0}).find("\"metadata_copy\": \"first\"") !=
        std::string::npos);
  status.metadata_copy = "second";
  std::string text = format_list(StatusReply{{status}, 0});
  CHECK(text.find("  dirty: 0 (0B)\n"
                  "  metadata: read from the second copy\n"
                  "  statistics:\n") != std::string::npos);
  const std::string line = "  metadata: read from the second copy\n";
  CHECK(text.size() == freebsd.size() + line.size());
  CHECK(format_status_json(StatusReply{{status}, 0}).find("\"metadata_copy\": \"second\"") !=
        std::string::npos);
  status.metadata_copy.reset();
  CHECK(format_status_json(StatusReply{{status}, 0}).find("metadata_copy") == std::string::npos);

  hast::config::ResourceConfig config;
  config.name = "shared";
  hast::replication::ResourceStatus core;
  core.name = "shared";
  core.status = "-";
  CHECK_FALSE(wire_status(core, config, hast::Instant{}).metadata_copy.has_value());  // init
  core.role = hast::meta::Role::secondary;
  core.metadata_copy = hast::meta::MetadataCopy::second;
  CHECK(wire_status(core, config, hast::Instant{}).metadata_copy == "second");
  core.metadata_copy = hast::meta::MetadataCopy::first;
  CHECK(wire_status(core, config, hast::Instant{}).metadata_copy == "first");
}
