// Log level names.
#include "core/io/log.h"

#include "core/assert.h"

namespace hast {

std::string_view log_level_name(LogLevel level) {
  switch (level) {
    case LogLevel::debug:
      return "debug";
    case LogLevel::info:
      return "info";
    case LogLevel::warning:
      return "warning";
    case LogLevel::error:
      return "error";
  }
  HAST_UNREACHABLE();
}

}  // namespace hast
