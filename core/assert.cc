// Assertion failure reporting: one message on stderr, then abort.
#include "core/assert.h"

#include <cstdio>
#include <cstdlib>

namespace hast {
namespace {

// Per thread: each node thread (real) or simulator (sim) installs its own context.
thread_local AssertContext* current_context = nullptr;

}  // namespace

AssertContext* set_assert_context(AssertContext* context) {
  AssertContext* previous = current_context;
  current_context = context;
  return previous;
}

std::string describe_assert_context() {
  return current_context == nullptr ? std::string() : current_context->describe();
}

void assert_fail(const char* expression, const char* file, int line, const std::string& message) {
  std::string text = fmt::format("assertion failed: {} at {}:{}", expression, file, line);
  if (!message.empty()) text += fmt::format(": {}", message);
  std::string context = describe_assert_context();
  if (!context.empty()) text += fmt::format("\n  {}", context);
  std::fprintf(stderr, "%s\n", text.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace hast
