// Nv: HAST's name/value list, the encoding of every message, control request and of the
// metadata block (reference/hast-spec.md §6.2).
//
// Wire format of one element (all integers little-endian):
//   uint8  type       low 7 bits: 1..17 (NvType); high bit 0x80 = "host order"
//   uint8  namesize   strlen(name) + 1
//   uint32 dsize      data bytes, never 0
//   char   name[namesize], then padding to a multiple of 8 (contents ignored)
//   byte   data[dsize],    then zero padding to a multiple of 8
// Element size = 6 + roundup8(namesize) + roundup8(dsize). A zero byte where an element
// would start ends the list; everything after it is ignored (trailing padding).
//
// Model: an Nv is an ordered list of elements, kept in wire byte order. Lookups use the
// *first* element of a name: if its type differs from the one asked for, the lookup fails
// without searching further (FreeBSD's behaviour). decode() validates every rule of §6.2
// and returns Errc::corruption naming the element and the rule, never asserting on input.
// Building an invalid element (empty data, a name over 254 bytes, a string with a NUL) is
// a bug of the caller and asserted.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.h"

namespace hast::proto {

enum class NvType : std::uint8_t {
  int8 = 1,
  uint8 = 2,
  int16 = 3,
  uint16 = 4,
  int32 = 5,
  uint32 = 6,
  int64 = 7,
  uint64 = 8,
  int8_array = 9,
  uint8_array = 10,
  int16_array = 11,
  uint16_array = 12,
  int32_array = 13,
  uint32_array = 14,
  int64_array = 15,
  uint64_array = 16,
  string = 17,
};

inline constexpr std::uint8_t nv_type_max = 17;
inline constexpr std::uint8_t nv_host_order_flag = 0x80;
inline constexpr std::size_t nv_name_length_max = 254;

// Bytes of one item of `type` (the whole value for scalars); 1 for strings.
std::size_t nv_item_size(NvType type);
std::string_view nv_type_name(NvType type);

// The data bytes of one element. Every message carries a handful of scalar elements, so
// data of up to inline_bytes_max bytes is held in place; longer data (strings, arrays, the
// metadata's fields) on the heap. Reads like a byte vector: data(), size(), iteration,
// std::span<const std::byte>.
class NvBytes {
 public:
  static constexpr std::size_t inline_bytes_max = 16;

  NvBytes() = default;
  NvBytes(std::span<const std::byte> bytes) { assign(bytes); }  // NOLINT: converts like a vector
  NvBytes(const std::vector<std::byte>& bytes) : NvBytes(std::span<const std::byte>(bytes)) {}
  NvBytes(const NvBytes&) = default;
  NvBytes& operator=(const NvBytes&) = default;
  // A moved-from NvBytes is empty.
  NvBytes(NvBytes&& other) noexcept
      : size_(std::exchange(other.size_, 0)),
        inline_(other.inline_),
        heap_(std::move(other.heap_)) {
    other.heap_.clear();
  }
  NvBytes& operator=(NvBytes&& other) noexcept {
    if (this == &other) return *this;
    size_ = std::exchange(other.size_, 0);
    inline_ = other.inline_;
    heap_ = std::move(other.heap_);
    other.heap_.clear();
    return *this;
  }

  const std::byte* data() const { return heap_.empty() ? inline_.data() : heap_.data(); }
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const std::byte* begin() const { return data(); }
  const std::byte* end() const { return data() + size_; }
  operator std::span<const std::byte>() const { return {data(), size_}; }  // NOLINT

  friend bool operator==(const NvBytes& a, const NvBytes& b) { return equal(a, b); }
  friend bool operator==(const NvBytes& a, const std::vector<std::byte>& b) {
    return equal(a, b);
  }

 private:
  void assign(std::span<const std::byte> bytes);
  static bool equal(std::span<const std::byte> a, std::span<const std::byte> b);

  std::size_t size_ = 0;
  std::array<std::byte, inline_bytes_max> inline_{};  // the data when it fits
  std::vector<std::byte> heap_;                        // else the data; empty when inline
};

class Nv {
 public:
  struct Element {
    NvType type;
    std::string name;
    NvBytes data;  // little-endian items, exactly dsize bytes

    friend bool operator==(const Element&, const Element&) = default;
  };

  // ---- Building: appends an element (names may repeat; the first one wins lookups) ----
  void add_int8(std::string_view name, std::int8_t value);
  void add_uint8(std::string_view name, std::uint8_t value);
  void add_int16(std::string_view name, std::int16_t value);
  void add_uint16(std::string_view name, std::uint16_t value);
  void add_int32(std::string_view name, std::int32_t value);
  void add_uint32(std::string_view name, std::uint32_t value);
  void add_int64(std::string_view name, std::int64_t value);
  void add_uint64(std::string_view name, std::uint64_t value);
  void add_string(std::string_view name, std::string_view value);
  void add_uint8_array(std::string_view name, std::span<const std::uint8_t> items);
  void add_uint64_array(std::string_view name, std::span<const std::uint64_t> items);
  // Appends an element of any type from raw little-endian item bytes (asserted valid).
  void add_raw(NvType type, std::string_view name, std::span<const std::byte> data);

  // ---- Lookup by the first element named `name`; nullopt when absent or mistyped ----
  std::optional<std::int8_t> get_int8(std::string_view name) const;
  std::optional<std::uint8_t> get_uint8(std::string_view name) const;
  std::optional<std::int16_t> get_int16(std::string_view name) const;
  std::optional<std::uint16_t> get_uint16(std::string_view name) const;
  std::optional<std::int32_t> get_int32(std::string_view name) const;
  std::optional<std::uint32_t> get_uint32(std::string_view name) const;
  std::optional<std::int64_t> get_int64(std::string_view name) const;
  std::optional<std::uint64_t> get_uint64(std::string_view name) const;
  // The string without its terminating NUL.
  std::optional<std::string_view> get_string(std::string_view name) const;
  std::optional<std::vector<std::uint8_t>> get_uint8_array(std::string_view name) const;
  std::optional<std::vector<std::uint64_t>> get_uint64_array(std::string_view name) const;
  // True when an element of that name exists, whatever its type (flag-like fields).
  bool exists(std::string_view name) const;
  // The first element of that name, or null.
  const Element* find(std::string_view name) const;

  // The elements in order. On a temporary Nv (`for (auto& e : make().elements())`) the
  // elements are moved out, so the loop does not read a destroyed object.
  const std::vector<Element>& elements() const& { return elements_; }
  std::vector<Element> elements() && { return std::move(elements_); }
  bool empty() const { return elements_.empty(); }

  // ---- Wire form ----
  std::size_t encoded_size() const;
  std::vector<std::byte> encode() const;
  void encode_to(std::vector<std::byte>& out) const;
  // Validates and decodes `bytes` (exactly the nv blob: header and payload excluded).
  static Result<Nv> decode(std::span<const std::byte> bytes);

  // Equal when both hold the same elements in the same order.
  friend bool operator==(const Nv&, const Nv&) = default;

 private:
  template <typename T>
  std::optional<T> get_scalar(std::string_view name, NvType type) const;
  template <typename T>
  void add_scalar(std::string_view name, NvType type, T value);

  std::vector<Element> elements_;
};

}  // namespace hast::proto
