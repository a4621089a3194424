// StderrLog and SyslogLog (see log.h).
#include "real/log.h"

#include <syslog.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <utility>

#include <fmt/format.h>

#include "core/assert.h"

namespace hast::real {
namespace {

// Copies `message` with every control character replaced, so it stays one line.
std::string one_line(std::string_view message) {
  std::string line(message);
  for (char& c : line) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return line;
}

// "2024-05-01T14:03:07.123+02:00" in local time.
std::string local_timestamp(std::int64_t unix_ms) {
  std::int64_t seconds = unix_ms / 1000;
  std::int64_t millis = unix_ms % 1000;
  if (millis < 0) {
    seconds -= 1;
    millis += 1000;
  }
  std::time_t t = static_cast<std::time_t>(seconds);
  std::tm local{};
  localtime_r(&t, &local);
  char date[32];
  std::size_t n = std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &local);
  HAST_ASSERT(n > 0);
  long offset_minutes = local.tm_gmtoff / 60;
  char sign = offset_minutes < 0 ? '-' : '+';
  offset_minutes = std::labs(offset_minutes);
  return fmt::format("{}.{:03}{}{:02}:{:02}", std::string_view(date, n), millis, sign,
                     offset_minutes / 60, offset_minutes % 60);
}

std::int64_t now_unix_ms() {
  auto since = std::chrono::system_clock::now().time_since_epoch();
  return std::chrono::duration_cast<std::chrono::milliseconds>(since).count();
}

// Writes all of `line`, retrying interrupted and partial writes; gives up on an error.
void write_all(int fd, std::string_view line) {
  while (!line.empty()) {
    ssize_t n = ::write(fd, line.data(), line.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    line.remove_prefix(static_cast<std::size_t>(n));
  }
}

int syslog_priority(LogLevel level) {
  switch (level) {
    case LogLevel::debug:
      return LOG_DEBUG;
    case LogLevel::info:
      return LOG_INFO;
    case LogLevel::warning:
      return LOG_WARNING;
    case LogLevel::error:
      return LOG_ERR;
  }
  HAST_UNREACHABLE();
}

}  // namespace

std::string format_log_line(std::int64_t unix_ms, LogLevel level, std::string_view tag,
                            std::string_view message) {
  std::string time = local_timestamp(unix_ms);
  if (tag.empty()) {
    return fmt::format("{} {} {}\n", time, log_level_name(level), one_line(message));
  }
  return fmt::format("{} {} [{}] {}\n", time, log_level_name(level), one_line(tag),
                     one_line(message));
}

StderrLog::StderrLog(std::string tag, LogLevel threshold, int fd)
    : tag_(std::move(tag)), threshold_(threshold), fd_(fd) {
  HAST_ASSERT(fd_ >= 0);
}

void StderrLog::write(LogLevel level, std::string_view message) {
  if (level < threshold()) return;
  write_all(fd_, format_log_line(now_unix_ms(), level, tag_, message));
}

SyslogLog::SyslogLog(std::string tag, LogLevel threshold)
    : tag_(std::move(tag)), threshold_(threshold) {
  // LOG_NDELAY connects now (glibc opens the socket close-on-exec), not in the middle of
  // the first message.
  openlog("hastd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void SyslogLog::write(LogLevel level, std::string_view message) {
  if (level < threshold()) return;
  std::string line =
      tag_.empty() ? one_line(message) : fmt::format("[{}] {}", one_line(tag_), one_line(message));
  syslog(syslog_priority(level), "%s", line.c_str());
}

}  // namespace hast::real
