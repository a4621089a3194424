// Role: what a node does for one resource (reference/hast-spec.md §3.3).
//
// `init` = the resource is off (no worker, no device, peer connections refused);
// `primary` = serves I/O and replicates to the peer; `secondary` = receives from the peer.
// The names are the strings HAST prints and stores (`prevrole` in the metadata block,
// `role` in `hastctl list`); the numeric values are HAST's wire codes (`role` uint8 of the
// control protocol's SETROLE request: 1 init, 2 primary, 3 secondary). HAST's 0
// (HAST_ROLE_UNDEF) is not a role: it never appears in a valid request or block.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "core/assert.h"

namespace hast::meta {

enum class Role : std::uint8_t { init = 1, primary = 2, secondary = 3 };

// "init", "primary" or "secondary".
constexpr std::string_view role_name(Role role) {
  switch (role) {
    case Role::init:
      return "init";
    case Role::primary:
      return "primary";
    case Role::secondary:
      return "secondary";
  }
  HAST_UNREACHABLE();
}

// The role named exactly (case-sensitive, as HAST's strcmp) `name`, or nullopt.
constexpr std::optional<Role> parse_role(std::string_view name) {
  if (name == "init") return Role::init;
  if (name == "primary") return Role::primary;
  if (name == "secondary") return Role::secondary;
  return std::nullopt;
}

// The role whose wire code is `code` (1..3), or nullopt for any other value.
constexpr std::optional<Role> role_from_code(std::uint8_t code) {
  if (code < static_cast<std::uint8_t>(Role::init)) return std::nullopt;
  if (code > static_cast<std::uint8_t>(Role::secondary)) return std::nullopt;
  return static_cast<Role>(code);
}

constexpr std::uint8_t role_code(Role role) {
  return static_cast<std::uint8_t>(role);
}

}  // namespace hast::meta
