// Result<T>: the value of an operation that can fail for an expected reason.
//
// Model: shaped like C++23 std::expected<T, Error> (has_value, value, error, operator*,
// operator->, value_or, and construction from Unexpected), so it can become an alias of
// std::expected once the project moves to C++23. Errors come from a closed set (Errc)
// plus a free-form context string that names what failed and where ("disk read at
// offset 4096: io").
//
// Policy (STYLE.md R7): Result is for failures the environment causes (a disk error, a
// peer that went away, a malformed message). Bugs are assertions (core/assert.h).
// Results are [[nodiscard]]; a deliberate discard goes through ignore_error(result,
// "why") so every such place can be found with grep.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

#include "core/assert.h"

namespace hast {

// The closed set of error kinds. Add a member only when a caller must be able to react to
// it differently from every existing member.
enum class Errc : std::uint8_t {
  io,                // the device or the operating system reported an I/O error
  corruption,        // bytes failed validation (bad checksum, bad encoding, bad magic)
  not_found,         // the named thing does not exist
  disconnected,      // the peer closed or reset the connection
  timed_out,         // a deadline passed before the operation completed
  no_space,          // a bounded resource is full
  invalid_argument,  // the request itself is malformed or out of range
  cancelled,         // the fiber or its node is being torn down
  split_brain,       // both nodes wrote as primary since their last common state
  unsupported,       // the operation is not supported by this device or peer
  refused,           // the peer or the system refused the request (connect refused)
  busy,              // the resource is in use (address in use, role conflict)
};

// Short stable name of an error kind ("io", "timed_out"), for logs and messages.
std::string_view errc_name(Errc code);

// An error kind plus the context that names what failed and where.
class Error {
 public:
  explicit Error(Errc code, std::string context = {}) : code_(code), context_(std::move(context)) {}

  Errc code() const { return code_; }
  const std::string& context() const { return context_; }

  // "context: name", or just the name when there is no context.
  std::string message() const;

  // Returns a copy whose context is prefixed with `outer` ("outer: inner").
  Error wrap(std::string_view outer) const;

  friend bool operator==(const Error& a, const Error& b) { return a.code_ == b.code_; }

 private:
  Errc code_;
  std::string context_;
};

// Wrapper that marks an Error as the failure alternative, like std::unexpected.
struct Unexpected {
  Error error;
};

// Builds the failure alternative: `return fail(Errc::io, "read at 4096");`.
inline Unexpected fail(Errc code, std::string context = {}) {
  return Unexpected{Error(code, std::move(context))};
}
inline Unexpected fail(Error error) {
  return Unexpected{std::move(error)};
}

template <typename T>
class [[nodiscard]] Result {
 public:
  using value_type = T;

  Result() requires std::is_default_constructible_v<T> : state_(std::in_place_index<0>) {}
  Result(const T& value) : state_(std::in_place_index<0>, value) {}        // NOLINT: implicit
  Result(T&& value) : state_(std::in_place_index<0>, std::move(value)) {}  // NOLINT
  Result(Unexpected failure)  // NOLINT: implicit, like std::expected
      : state_(std::in_place_index<1>, std::move(failure.error)) {}

  bool has_value() const { return state_.index() == 0; }
  explicit operator bool() const { return has_value(); }

  T& value() & {
    HAST_ASSERT_MSG(has_value(), "Result::value() on an error: {}", error_message());
    return std::get<0>(state_);
  }
  const T& value() const& {
    HAST_ASSERT_MSG(has_value(), "Result::value() on an error: {}", error_message());
    return std::get<0>(state_);
  }
  T&& value() && {
    HAST_ASSERT_MSG(has_value(), "Result::value() on an error: {}", error_message());
    return std::get<0>(std::move(state_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  template <typename U>
  T value_or(U&& fallback) const& {
    return has_value() ? std::get<0>(state_) : static_cast<T>(std::forward<U>(fallback));
  }

  const Error& error() const {
    HAST_ASSERT_MSG(!has_value(), "Result::error() on a value");
    return std::get<1>(state_);
  }

 private:
  std::string error_message() const {
    return has_value() ? std::string() : std::get<1>(state_).message();
  }

  std::variant<T, Error> state_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  using value_type = void;

  Result() = default;
  Result(Unexpected failure) : error_(std::move(failure.error)), failed_(true) {}  // NOLINT

  bool has_value() const { return !failed_; }
  explicit operator bool() const { return has_value(); }
  void value() const { HAST_ASSERT_MSG(has_value(), "Result::value() on an error: {}", msg()); }
  const Error& error() const {
    HAST_ASSERT_MSG(!has_value(), "Result::error() on a value");
    return error_;
  }

 private:
  std::string msg() const { return failed_ ? error_.message() : std::string(); }

  Error error_{Errc::io};
  bool failed_ = false;
};

// Success of a Result<void>: `return ok();`.
inline Result<void> ok() {
  return {};
}

// The one sanctioned way to drop a Result: `why` says why the failure does not matter.
template <typename T>
void ignore_error(const Result<T>& result, std::string_view why) {
  static_cast<void>(result);
  static_cast<void>(why);
}

// Propagates a failure: `HAST_TRY(disk.flush());` returns the error from the enclosing
// function, which must itself return a Result.
#define HAST_TRY(expr)                                                    \
  do {                                                                    \
    auto hast_try_result_ = (expr);                                       \
    if (!hast_try_result_) return ::hast::fail(hast_try_result_.error()); \
  } while (0)

}  // namespace hast
