// Names and messages of errors.
#include "core/result.h"

#include <fmt/format.h>

namespace hast {

std::string_view errc_name(Errc code) {
  switch (code) {
    case Errc::io:
      return "io";
    case Errc::corruption:
      return "corruption";
    case Errc::not_found:
      return "not_found";
    case Errc::disconnected:
      return "disconnected";
    case Errc::timed_out:
      return "timed_out";
    case Errc::no_space:
      return "no_space";
    case Errc::invalid_argument:
      return "invalid_argument";
    case Errc::cancelled:
      return "cancelled";
    case Errc::split_brain:
      return "split_brain";
    case Errc::unsupported:
      return "unsupported";
    case Errc::refused:
      return "refused";
    case Errc::busy:
      return "busy";
  }
  HAST_UNREACHABLE();
}

std::string Error::message() const {
  if (context_.empty()) return std::string(errc_name(code_));
  return fmt::format("{}: {}", context_, errc_name(code_));
}

Error Error::wrap(std::string_view outer) const {
  if (context_.empty()) return Error(code_, std::string(outer));
  return Error(code_, fmt::format("{}: {}", outer, context_));
}

}  // namespace hast
