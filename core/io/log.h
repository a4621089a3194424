// Log: where a node writes what it did and why.
//
// Model: injected per node. The simulator prefixes each line with virtual time and the
// node's name and keeps it in the run's trace; the daemon writes to stderr (-F) or
// syslog. Writing never suspends the calling fiber and never fails visibly.
#pragma once

#include <cstdint>
#include <string_view>
#include <utility>

#include <fmt/format.h>

namespace hast {

enum class LogLevel : std::uint8_t { debug, info, warning, error };

std::string_view log_level_name(LogLevel level);

class Log {
 public:
  virtual ~Log() = default;

  // Records one message (no trailing newline). Does not suspend; a sink that cannot
  // write drops the message.
  virtual void write(LogLevel level, std::string_view message) = 0;

  // Messages below this level may be dropped before formatting.
  virtual LogLevel threshold() const { return LogLevel::debug; }
};

template <typename... Args>
void log_at(Log& log, LogLevel level, fmt::format_string<Args...> format, Args&&... args) {
  if (level < log.threshold()) return;
  log.write(level, fmt::format(format, std::forward<Args>(args)...));
}

template <typename... Args>
void log_debug(Log& log, fmt::format_string<Args...> format, Args&&... args) {
  log_at(log, LogLevel::debug, format, std::forward<Args>(args)...);
}
template <typename... Args>
void log_info(Log& log, fmt::format_string<Args...> format, Args&&... args) {
  log_at(log, LogLevel::info, format, std::forward<Args>(args)...);
}
template <typename... Args>
void log_warning(Log& log, fmt::format_string<Args...> format, Args&&... args) {
  log_at(log, LogLevel::warning, format, std::forward<Args>(args)...);
}
template <typename... Args>
void log_error(Log& log, fmt::format_string<Args...> format, Args&&... args) {
  log_at(log, LogLevel::error, format, std::forward<Args>(args)...);
}

}  // namespace hast
