// JSON output of status and list (see json.h).
#include "core/control/json.h"

#include <cstdint>
#include <vector>

#include <fmt/format.h>

namespace hast::control {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD in UTF-8

// Length of the valid UTF-8 sequence of 2..4 bytes at the start of `text`, or 0 (RFC 3629:
// no overlong forms, no surrogates, nothing above U+10FFFF).
std::size_t utf8_sequence(std::string_view text) {
  HAST_ASSERT(!text.empty());
  auto byte = [&text](std::size_t i) { return static_cast<std::uint8_t>(text[i]); };
  std::uint8_t lead = byte(0);
  std::size_t length = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
  if (lead < 0xC2 || lead > 0xF4 || text.size() < length) return 0;
  std::uint8_t low = 0x80;
  std::uint8_t high = 0xBF;
  if (lead == 0xE0) low = 0xA0;
  if (lead == 0xED) high = 0x9F;
  if (lead == 0xF0) low = 0x90;
  if (lead == 0xF4) high = 0x8F;
  if (byte(1) < low || byte(1) > high) return 0;
  for (std::size_t i = 2; i < length; i++) {
    if (byte(i) < 0x80 || byte(i) > 0xBF) return 0;
  }
  return length;
}

void append_ascii(std::string& out, char c) {
  switch (c) {
    case '"':
      out += "\\\"";
      return;
    case '\\':
      out += "\\\\";
      return;
    case '\b':
      out += "\\b";
      return;
    case '\f':
      out += "\\f";
      return;
    case '\n':
      out += "\\n";
      return;
    case '\r':
      out += "\\r";
      return;
    case '\t':
      out += "\\t";
      return;
    default:
      break;
  }
  if (static_cast<std::uint8_t>(c) < 0x20) {
    out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
  } else {
    out += c;
  }
}

// Writes nested objects and arrays, two spaces per level, one member per line.
class JsonWriter {
 public:
  void begin_object(std::string_view key = {}) { open(key, '{'); }
  void end_object() { close('}'); }
  void begin_array(std::string_view key) { open(key, '['); }
  void end_array() { close(']'); }

  void member_string(std::string_view key, std::string_view value) {
    start_member(key);
    out_ += json_string(value);
  }
  void member_uint(std::string_view key, std::uint64_t value) {
    start_member(key);
    out_ += fmt::format("{}", value);
  }
  void member_int(std::string_view key, std::int64_t value) {
    start_member(key);
    out_ += fmt::format("{}", value);
  }
  void member_bool(std::string_view key, bool value) {
    start_member(key);
    out_ += value ? "true" : "false";
  }

  std::string finish() {
    HAST_ASSERT(empty_.empty());
    return std::move(out_) + "\n";
  }

 private:
  // A comma after the previous member, a new line, the indentation and the key (none at
  // the root and in arrays).
  void start_member(std::string_view key) {
    if (empty_.empty()) return;
    if (!empty_.back()) out_ += ',';
    empty_.back() = false;
    out_ += '\n';
    out_.append(2 * empty_.size(), ' ');
    if (!key.empty()) out_ += json_string(key) + ": ";
  }
  void open(std::string_view key, char bracket) {
    start_member(key);
    out_ += bracket;
    empty_.push_back(true);
  }
  void close(char bracket) {
    HAST_ASSERT(!empty_.empty());
    bool empty = empty_.back();
    empty_.pop_back();
    if (!empty) {
      out_ += '\n';
      out_.append(2 * empty_.size(), ' ');
    }
    out_ += bracket;
  }

  std::string out_;
  std::vector<bool> empty_;  // per open container: nothing written in it yet
};

void write_worker(JsonWriter& json, const proto::WorkerStatus& worker) {
  json.member_string("status", worker.status);
  json.member_uint("dirty", worker.dirty);
  json.member_uint("extentsize", worker.extentsize);
  json.member_uint("keepdirty", worker.keepdirty);
  json.member_uint("stat_read", worker.stat_read);
  json.member_uint("stat_write", worker.stat_write);
  json.member_uint("stat_delete", worker.stat_delete);
  json.member_uint("stat_flush", worker.stat_flush);
  json.member_uint("stat_activemap_update", worker.stat_activemap_update);
  json.member_uint("stat_read_error", worker.stat_read_error);
  json.member_uint("stat_write_error", worker.stat_write_error);
  json.member_uint("stat_delete_error", worker.stat_delete_error);
  json.member_uint("stat_flush_error", worker.stat_flush_error);
  json.member_uint("idle_queue_size", worker.idle_queue_size);
  json.member_uint("local_queue_size", worker.local_queue_size);
  json.member_uint("send_queue_size", worker.send_queue_size);
  json.member_uint("recv_queue_size", worker.recv_queue_size);
  json.member_uint("done_queue_size", worker.done_queue_size);
}

void write_sync(JsonWriter& json, const proto::SyncStatus& sync) {
  json.begin_object("sync");
  json.member_bool("running", sync.running);
  json.member_uint("done", sync.done);
  json.member_uint("total", sync.total);
  if (sync.eta_seconds) json.member_uint("eta_seconds", *sync.eta_seconds);
  json.end_object();
}

void write_resource(JsonWriter& json, const proto::ResourceStatus& status) {
  json.begin_object();
  json.member_string("resource", status.resource);
  if (status.error != 0) {
    json.member_int("error", status.error);
    json.end_object();
    return;
  }
  json.member_string("provname", status.provname);
  json.member_string("localpath", status.localpath);
  json.member_string("remoteaddr", status.remoteaddr);
  if (status.sourceaddr) json.member_string("sourceaddr", *status.sourceaddr);
  json.member_string("replication", status.replication);
  json.member_string("checksum", status.checksum);
  json.member_string("compression", status.compression);
  json.member_string("role", proto::role_name(status.role));
  json.member_int("workerpid", status.workerpid);
  if (status.worker) write_worker(json, *status.worker);
  json.member_bool("inconsistent", status.inconsistent);
  if (status.metadata_copy) json.member_string("metadata_copy", *status.metadata_copy);
  if (status.sync) write_sync(json, *status.sync);
  json.end_object();
}

}  // namespace

std::string json_string(std::string_view text) {
  std::string out = "\"";
  out.reserve(text.size() + 2);
  std::size_t i = 0;
  while (i < text.size()) {
    if (static_cast<std::uint8_t>(text[i]) < 0x80) {
      append_ascii(out, text[i++]);
      continue;
    }
    std::size_t length = utf8_sequence(text.substr(i));
    if (length == 0) {
      out += kReplacement;
      i++;
      continue;
    }
    out += text.substr(i, length);
    i += length;
  }
  out += '"';
  return out;
}

std::string format_status_json(const proto::StatusReply& reply) {
  JsonWriter json;
  json.begin_object();
  json.begin_array("resources");
  for (const proto::ResourceStatus& status : reply.resources)
    write_resource(json, status);
  json.end_array();
  if (reply.error != 0) json.member_int("error", reply.error);
  json.end_object();
  return json.finish();
}

}  // namespace hast::control
