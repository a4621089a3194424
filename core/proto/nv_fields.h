// FieldReader: typed reads of required and optional nv fields for the message decoders
// (core/proto/messages.cc, core/proto/control_messages.cc).
//
// Model: a decoder reads every field it needs through one FieldReader, then asks status()
// once. The first failure wins and names the message and the field ("request: missing
// field 'seq'", "reply: field 'error' is int32, not int16"), always Errc::corruption
// unless reject() says otherwise. After a failure, reads return default values, so a
// decoder needs no check between fields. Lookups follow Nv's rule: the first element of a
// name decides, and a type mismatch is a failure (never a search for a later element).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "core/proto/nv.h"
#include "core/result.h"

namespace hast::proto {

// The NvType and getter of each C++ field type.
template <typename T>
struct NvField;
#define HAST_NV_FIELD(cpp_type, nv_type, getter)                                     \
  template <>                                                                        \
  struct NvField<cpp_type> {                                                         \
    static constexpr NvType type = NvType::nv_type;                                  \
    static auto get(const Nv& nv, std::string_view name) { return nv.getter(name); } \
  }
HAST_NV_FIELD(std::int8_t, int8, get_int8);
HAST_NV_FIELD(std::uint8_t, uint8, get_uint8);
HAST_NV_FIELD(std::int16_t, int16, get_int16);
HAST_NV_FIELD(std::uint16_t, uint16, get_uint16);
HAST_NV_FIELD(std::int32_t, int32, get_int32);
HAST_NV_FIELD(std::uint32_t, uint32, get_uint32);
HAST_NV_FIELD(std::int64_t, int64, get_int64);
HAST_NV_FIELD(std::uint64_t, uint64, get_uint64);
HAST_NV_FIELD(std::string, string, get_string);
HAST_NV_FIELD(std::vector<std::uint8_t>, uint8_array, get_uint8_array);
#undef HAST_NV_FIELD

class FieldReader {
 public:
  // `message` names the message in errors; both must outlive the reader.
  FieldReader(const Nv& nv, std::string_view message) : nv_(nv), message_(message) {}

  // The field's value; records "missing" or "mistyped" and returns T{} otherwise.
  template <typename T>
  T required(std::string_view field) {
    auto value = optional<T>(field);
    if (!value) {
      if (!nv_.exists(field)) reject(fmt::format("missing field '{}'", field));
      return T{};
    }
    return std::move(*value);
  }

  // nullopt when absent; records "mistyped" (and returns nullopt) for another type.
  template <typename T>
  std::optional<T> optional(std::string_view field) {
    if (failed()) return std::nullopt;
    const Nv::Element* element = nv_.find(field);
    if (element == nullptr) return std::nullopt;
    auto value = NvField<T>::get(nv_, field);
    if (!value) {
      reject(fmt::format("field '{}' is {}, not {}", field, nv_type_name(element->type),
                         nv_type_name(NvField<T>::type)));
      return std::nullopt;
    }
    return T(std::move(*value));
  }

  // True when a field of that name exists, whatever its type (flag-like fields, §6.2).
  bool exists(std::string_view field) const { return nv_.exists(field); }

  // Records a failure unless one is already recorded: "<message>: <what>".
  void reject(std::string_view what, Errc code = Errc::corruption) {
    if (!failed()) error_ = Error(code, fmt::format("{}: {}", message_, what));
  }

  bool failed() const { return error_.has_value(); }

  // The first recorded failure, or success.
  Result<void> status() const {
    if (error_) return fail(*error_);
    return ok();
  }

 private:
  const Nv& nv_;
  std::string_view message_;
  std::optional<Error> error_;
};

}  // namespace hast::proto
