// Assertions that stay on in every build (STYLE.md R8).
//
// HAST_ASSERT(cond) and HAST_ASSERT_MSG(cond, fmt, args...) check invariants: a failure is a
// bug in this program, never an operating error (those are Results). On failure they print
// the expression, the place, the message and, when a simulator is running on this thread,
// its seed, event number and replay command, then abort. HAST_UNREACHABLE() marks code that
// must not run. HAST_MAYBE(cond) documents that both outcomes of `cond` are expected.
#pragma once

#include <string>

#include <fmt/format.h>

namespace hast {

// Something that can describe where a run is, for assertion messages. The simulator
// implements it (seed, event number, virtual time, replay command).
class AssertContext {
 public:
  virtual ~AssertContext() = default;
  virtual std::string describe() const = 0;
};

// Installs `context` for assertion failures on the calling thread and returns the one it
// replaces. Pass nullptr to remove it. The context must outlive its installation.
AssertContext* set_assert_context(AssertContext* context);

// Describes the installed context, or returns an empty string.
std::string describe_assert_context();

[[noreturn]] void assert_fail(const char* expression, const char* file, int line,
                              const std::string& message);

}  // namespace hast

#define HAST_ASSERT(cond)                                            \
  do {                                                               \
    if (!(cond)) [[unlikely]]                                        \
      ::hast::assert_fail(#cond, __FILE__, __LINE__, std::string()); \
  } while (0)

#define HAST_ASSERT_MSG(cond, ...)                                              \
  do {                                                                          \
    if (!(cond)) [[unlikely]]                                                   \
      ::hast::assert_fail(#cond, __FILE__, __LINE__, fmt::format(__VA_ARGS__)); \
  } while (0)

#define HAST_UNREACHABLE() ::hast::assert_fail("unreachable", __FILE__, __LINE__, std::string())

#define HAST_MAYBE(cond) static_cast<void>(static_cast<bool>(cond))
