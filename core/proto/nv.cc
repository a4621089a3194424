// Nv encoding and validation (reference/hast-spec.md §6.2).
#include "core/proto/nv.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>

#include <fmt/format.h>

namespace hast::proto {
namespace {

static_assert(std::endian::native == std::endian::little,
              "nv items are kept in little-endian (wire) order; big-endian hosts need swaps");

constexpr std::size_t kHeaderBytes = 6;
// Elements an nv makes room for at its first: a request or reply (up to 8 fields) in one
// allocation instead of four regrowths.
constexpr std::size_t elements_reserved = 8;

constexpr std::size_t roundup8(std::size_t n) {
  return (n + 7) & ~std::size_t{7};
}

std::size_t element_size(std::size_t namesize, std::size_t dsize) {
  return kHeaderBytes + roundup8(namesize) + roundup8(dsize);
}

std::uint32_t load_u32(const std::byte* p) {
  std::uint32_t value = 0;
  std::memcpy(&value, p, sizeof(value));
  return value;
}

bool is_array(NvType type) {
  return type >= NvType::int8_array && type <= NvType::uint64_array;
}

Unexpected bad(std::size_t offset, std::string_view what) {
  return fail(Errc::corruption, fmt::format("nv element at byte {}: {}", offset, what));
}

// Checks the data of one element against its type.
Result<void> validate_data(NvType type, std::span<const std::byte> data, std::size_t at) {
  if (type == NvType::string) {
    if (data.back() != std::byte{0}) return bad(at, "string not NUL-terminated");
    auto interior = std::find(data.begin(), data.end() - 1, std::byte{0});
    if (interior != data.end() - 1) return bad(at, "string with an interior NUL");
    return ok();
  }
  std::size_t item = nv_item_size(type);
  if (!is_array(type) && data.size() != item) {
    return bad(at, fmt::format("{} of {} bytes", nv_type_name(type), data.size()));
  }
  if (is_array(type) && data.size() % item != 0) {
    return bad(at, fmt::format("{} of {} bytes", nv_type_name(type), data.size()));
  }
  return ok();
}

// Decodes the element at `at`; returns its padded size through `size`.
Result<Nv::Element> decode_element(std::span<const std::byte> bytes, std::size_t at,
                                   std::size_t& size) {
  HAST_ASSERT(at < bytes.size());
  if (bytes.size() - at < kHeaderBytes) return bad(at, "truncated header");
  const std::byte* header = bytes.data() + at;
  auto raw_type = std::to_integer<std::uint8_t>(header[0]);
  auto code = static_cast<std::uint8_t>(raw_type & ~nv_host_order_flag);
  std::size_t namesize = std::to_integer<std::uint8_t>(header[1]);
  std::size_t dsize = load_u32(header + 2);
  if (code < 1 || code > nv_type_max) return bad(at, fmt::format("unknown type {}", code));
  if (namesize == 0) return bad(at, "name size 0");
  if (dsize == 0) return bad(at, "data size 0");
  size = element_size(namesize, dsize);
  if (size > bytes.size() - at) return bad(at, "element runs past the end");
  const char* name = reinterpret_cast<const char*>(header + kHeaderBytes);
  if (name[namesize - 1] != '\0' || std::strlen(name) != namesize - 1) {
    return bad(at, "name length does not match its size");
  }
  auto type = static_cast<NvType>(code);
  auto data = bytes.subspan(at + kHeaderBytes + roundup8(namesize), dsize);
  HAST_TRY(validate_data(type, data, at));
  // An element flagged "host order" is in the sender's memory order; hosts that run
  // this code are little-endian, like the wire, so no swap is needed.
  return Nv::Element{type, std::string(name, namesize - 1), NvBytes(data)};
}

}  // namespace

std::size_t nv_item_size(NvType type) {
  switch (type) {
    case NvType::int8:
    case NvType::uint8:
    case NvType::int8_array:
    case NvType::uint8_array:
    case NvType::string:
      return 1;
    case NvType::int16:
    case NvType::uint16:
    case NvType::int16_array:
    case NvType::uint16_array:
      return 2;
    case NvType::int32:
    case NvType::uint32:
    case NvType::int32_array:
    case NvType::uint32_array:
      return 4;
    case NvType::int64:
    case NvType::uint64:
    case NvType::int64_array:
    case NvType::uint64_array:
      return 8;
  }
  HAST_UNREACHABLE();
}

std::string_view nv_type_name(NvType type) {
  static constexpr std::string_view names[] = {
      "int8",    "uint8",    "int16",   "uint16",   "int32",   "uint32",
      "int64",   "uint64",   "int8[]",  "uint8[]",  "int16[]", "uint16[]",
      "int32[]", "uint32[]", "int64[]", "uint64[]", "string"};
  auto index = static_cast<std::size_t>(type);
  HAST_ASSERT(index >= 1 && index <= nv_type_max);
  return names[index - 1];
}

void Nv::add_raw(NvType type, std::string_view name, std::span<const std::byte> data) {
  HAST_ASSERT_MSG(name.size() <= nv_name_length_max, "nv name '{}' too long", name);
  HAST_ASSERT_MSG(name.find('\0') == std::string_view::npos, "nv name with a NUL");
  HAST_ASSERT_MSG(!data.empty(), "nv element '{}' without data", name);
  HAST_ASSERT_MSG(data.size() <= std::numeric_limits<std::uint32_t>::max(),
                  "nv element '{}' of {} bytes", name, data.size());
  HAST_ASSERT(validate_data(type, data, 0).has_value());
  if (elements_.empty()) elements_.reserve(elements_reserved);
  elements_.push_back(Element{type, std::string(name), NvBytes(data)});
}

template <typename T>
void Nv::add_scalar(std::string_view name, NvType type, T value) {
  static_assert(std::is_integral_v<T>);
  HAST_ASSERT(nv_item_size(type) == sizeof(T));
  std::byte bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));
  add_raw(type, name, bytes);
}

void Nv::add_int8(std::string_view name, std::int8_t v) {
  add_scalar(name, NvType::int8, v);
}
void Nv::add_uint8(std::string_view name, std::uint8_t v) {
  add_scalar(name, NvType::uint8, v);
}
void Nv::add_int16(std::string_view name, std::int16_t v) {
  add_scalar(name, NvType::int16, v);
}
void Nv::add_uint16(std::string_view name, std::uint16_t v) {
  add_scalar(name, NvType::uint16, v);
}
void Nv::add_int32(std::string_view name, std::int32_t v) {
  add_scalar(name, NvType::int32, v);
}
void Nv::add_uint32(std::string_view name, std::uint32_t v) {
  add_scalar(name, NvType::uint32, v);
}
void Nv::add_int64(std::string_view name, std::int64_t v) {
  add_scalar(name, NvType::int64, v);
}
void Nv::add_uint64(std::string_view name, std::uint64_t v) {
  add_scalar(name, NvType::uint64, v);
}

void Nv::add_string(std::string_view name, std::string_view value) {
  HAST_ASSERT_MSG(value.find('\0') == std::string_view::npos, "nv string with a NUL");
  std::vector<std::byte> data(value.size() + 1);
  std::memcpy(data.data(), value.data(), value.size());
  add_raw(NvType::string, name, data);
}

void Nv::add_uint8_array(std::string_view name, std::span<const std::uint8_t> items) {
  add_raw(NvType::uint8_array, name, std::as_bytes(items));
}

void Nv::add_uint64_array(std::string_view name, std::span<const std::uint64_t> items) {
  add_raw(NvType::uint64_array, name, std::as_bytes(items));
}

void NvBytes::assign(std::span<const std::byte> bytes) {
  size_ = bytes.size();
  if (size_ <= inline_bytes_max) {
    if (size_ > 0) std::memcpy(inline_.data(), bytes.data(), size_);
    HAST_ASSERT(heap_.empty());
    return;
  }
  heap_.assign(bytes.begin(), bytes.end());
  HAST_ASSERT(heap_.size() == size_);
}

bool NvBytes::equal(std::span<const std::byte> a, std::span<const std::byte> b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size()) == 0);
}

const Nv::Element* Nv::find(std::string_view name) const {
  for (const auto& element : elements_) {
    if (element.name == name) return &element;  // compares lengths first
  }
  return nullptr;
}

bool Nv::exists(std::string_view name) const {
  return find(name) != nullptr;
}

template <typename T>
std::optional<T> Nv::get_scalar(std::string_view name, NvType type) const {
  const Element* element = find(name);
  if (element == nullptr || element->type != type) return std::nullopt;
  HAST_ASSERT(element->data.size() == sizeof(T));
  T value;
  std::memcpy(&value, element->data.data(), sizeof(T));
  return value;
}

std::optional<std::int8_t> Nv::get_int8(std::string_view n) const {
  return get_scalar<std::int8_t>(n, NvType::int8);
}
std::optional<std::uint8_t> Nv::get_uint8(std::string_view n) const {
  return get_scalar<std::uint8_t>(n, NvType::uint8);
}
std::optional<std::int16_t> Nv::get_int16(std::string_view n) const {
  return get_scalar<std::int16_t>(n, NvType::int16);
}
std::optional<std::uint16_t> Nv::get_uint16(std::string_view n) const {
  return get_scalar<std::uint16_t>(n, NvType::uint16);
}
std::optional<std::int32_t> Nv::get_int32(std::string_view n) const {
  return get_scalar<std::int32_t>(n, NvType::int32);
}
std::optional<std::uint32_t> Nv::get_uint32(std::string_view n) const {
  return get_scalar<std::uint32_t>(n, NvType::uint32);
}
std::optional<std::int64_t> Nv::get_int64(std::string_view n) const {
  return get_scalar<std::int64_t>(n, NvType::int64);
}
std::optional<std::uint64_t> Nv::get_uint64(std::string_view n) const {
  return get_scalar<std::uint64_t>(n, NvType::uint64);
}

std::optional<std::string_view> Nv::get_string(std::string_view name) const {
  const Element* element = find(name);
  if (element == nullptr || element->type != NvType::string) return std::nullopt;
  HAST_ASSERT(!element->data.empty());
  return std::string_view(reinterpret_cast<const char*>(element->data.data()),
                          element->data.size() - 1);
}

std::optional<std::vector<std::uint8_t>> Nv::get_uint8_array(std::string_view name) const {
  const Element* element = find(name);
  if (element == nullptr || element->type != NvType::uint8_array) return std::nullopt;
  std::vector<std::uint8_t> items(element->data.size());
  std::memcpy(items.data(), element->data.data(), items.size());
  return items;
}

std::optional<std::vector<std::uint64_t>> Nv::get_uint64_array(std::string_view name) const {
  const Element* element = find(name);
  if (element == nullptr || element->type != NvType::uint64_array) return std::nullopt;
  HAST_ASSERT(element->data.size() % 8 == 0);
  std::vector<std::uint64_t> items(element->data.size() / 8);
  std::memcpy(items.data(), element->data.data(), element->data.size());
  return items;
}

std::size_t Nv::encoded_size() const {
  std::size_t total = 0;
  for (const auto& element : elements_) {
    total += element_size(element.name.size() + 1, element.data.size());
  }
  return total;
}

void Nv::encode_to(std::vector<std::byte>& out) const {
  std::size_t start = out.size();
  out.resize(start + encoded_size(), std::byte{0});
  std::byte* p = out.data() + start;
  for (const auto& element : elements_) {
    std::size_t namesize = element.name.size() + 1;
    auto dsize = static_cast<std::uint32_t>(element.data.size());
    p[0] = static_cast<std::byte>(element.type);
    p[1] = static_cast<std::byte>(namesize);
    std::memcpy(p + 2, &dsize, sizeof(dsize));
    std::memcpy(p + kHeaderBytes, element.name.data(), element.name.size());
    std::memcpy(p + kHeaderBytes + roundup8(namesize), element.data.data(), dsize);
    p += element_size(namesize, dsize);
  }
  HAST_ASSERT(p == out.data() + out.size());
}

std::vector<std::byte> Nv::encode() const {
  std::vector<std::byte> out;
  encode_to(out);
  return out;
}

Result<Nv> Nv::decode(std::span<const std::byte> bytes) {
  Nv nv;
  nv.elements_.reserve(elements_reserved);
  std::size_t at = 0;
  while (at < bytes.size()) {
    if (bytes[at] == std::byte{0}) break;  // trailing zero padding ends the list
    std::size_t size = 0;
    auto element = decode_element(bytes, at, size);
    if (!element) return fail(element.error());
    nv.elements_.push_back(std::move(*element));
    at += size;
  }
  HAST_ASSERT(at <= bytes.size());
  return nv;
}

}  // namespace hast::proto
