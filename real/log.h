// The daemon's logs: StderrLog for the foreground (-F) and SyslogLog once daemonised
// (DESIGN.md §7).
//
// Model: each resource thread and the main thread may own its own instance, with its own
// tag (the resource name), writing to the same descriptor or to syslog. StderrLog hands
// each line to a single write(2), so lines of different threads do not mix (a pipe
// guarantees it up to PIPE_BUF, 4 KiB; a longer line written in pieces may, rarely);
// syslog(3) is thread-safe. Messages below the threshold are dropped; the threshold may
// be changed from any thread (`hastd -d` lowers it to debug).
//
// Messages come partly from the network (peer addresses, resource names): control
// characters, newlines included, are replaced by '?' so one message is one line.
//
// Errors: none visible. A write that fails (a closed stderr) drops the line.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/io/log.h"

namespace hast::real {

// The line a message becomes: "2024-05-01T14:03:07.123+02:00 warning [res0] text\n"
// (local time with its UTC offset, the level name, the tag in brackets when not empty).
// Exposed for tests. `unix_ms` is the wall time in milliseconds since the epoch.
std::string format_log_line(std::int64_t unix_ms, LogLevel level, std::string_view tag,
                            std::string_view message);

// Writes lines to a descriptor (stderr by default). Does not own the descriptor.
class StderrLog final : public Log {
 public:
  explicit StderrLog(std::string tag = {}, LogLevel threshold = LogLevel::info, int fd = 2);

  void write(LogLevel level, std::string_view message) override;
  LogLevel threshold() const override { return threshold_.load(std::memory_order_relaxed); }
  void set_threshold(LogLevel level) { threshold_.store(level, std::memory_order_relaxed); }

 private:
  std::string tag_;
  std::atomic<LogLevel> threshold_;
  int fd_;
};

// Sends messages to syslog as "hastd" with facility LOG_DAEMON and the process id; levels
// map to LOG_DEBUG, LOG_INFO, LOG_WARNING and LOG_ERR. The tag prefixes the message as
// "[tag] ". openlog() is process-wide: every instance opens it the same way, and it is
// left open at destruction.
class SyslogLog final : public Log {
 public:
  explicit SyslogLog(std::string tag = {}, LogLevel threshold = LogLevel::info);

  void write(LogLevel level, std::string_view message) override;
  LogLevel threshold() const override { return threshold_.load(std::memory_order_relaxed); }
  void set_threshold(LogLevel level) { threshold_.store(level, std::memory_order_relaxed); }

 private:
  std::string tag_;
  std::atomic<LogLevel> threshold_;
};

}  // namespace hast::real
