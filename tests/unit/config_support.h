// Helpers shared by the hast.conf tests: host identities and parse-then-resolve.
#pragma once

#include <string>
#include <string_view>

#include <catch2/catch.hpp>

#include "core/config/config.h"

namespace hast::test {

inline constexpr std::string_view test_machine_id = "4C4C4544-0042-3510-8052-B4C04F4B4E31";
inline constexpr std::uint64_t test_hostid = 3735928559;

// A host called `hostname`, with a fixed machine id and host id.
inline config::NodeIdentity host(std::string hostname) {
  config::NodeIdentity identity;
  identity.hostname = std::move(hostname);
  identity.machine_id = std::string(test_machine_id);
  identity.hostid = test_hostid;
  return identity;
}

// Parses and resolves `text` for `identity`; fails the test on an error.
inline config::NodeConfig resolve_text(std::string_view text, const config::NodeIdentity& identity,
                                       config::AddressFamilies families = {}) {
  auto parsed = config::parse(text);
  INFO(text);
  REQUIRE(parsed.has_value());
  auto node = config::resolve(*parsed, identity, families);
  if (!node) FAIL(node.error().context());
  return std::move(*node);
}

// The error context of parsing and resolving `text` for `identity`, or "" on success.
inline std::string error_text(std::string_view text,
                              const config::NodeIdentity& identity = host("fbsd_h1")) {
  auto parsed = config::parse(text);
  if (!parsed) return parsed.error().context();
  auto node = config::resolve(*parsed, identity);
  if (!node) return node.error().context();
  return std::string();
}

}  // namespace hast::test
