// Parsing and printing of transport addresses (reference/hast-spec.md §1.6).
#include <algorithm>
#include <cctype>

#include <fmt/format.h>

#include "core/io/network.h"

namespace hast {
namespace {

bool starts_with_nocase(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  return std::equal(prefix.begin(), prefix.end(), text.begin(), [](char a, char b) {
    return std::tolower(static_cast<unsigned char>(a)) ==
           std::tolower(static_cast<unsigned char>(b));
  });
}

Result<std::uint16_t> parse_port(std::string_view digits, std::string_view whole) {
  if (digits.empty() || digits.size() > 5) {
    return fail(Errc::invalid_argument, fmt::format("address '{}': bad port", whole));
  }
  std::uint32_t port = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') {
      return fail(Errc::invalid_argument, fmt::format("address '{}': bad port", whole));
    }
    port = port * 10 + static_cast<std::uint32_t>(c - '0');
  }
  if (port < 1 || port > 65535) {
    return fail(Errc::invalid_argument,
                fmt::format("address '{}': port {} out of range 1-65535", whole, port));
  }
  return static_cast<std::uint16_t>(port);
}

// Splits "host", "host:port", "[v6]", "[v6]:port" or a bare IPv6 literal.
Result<Address> parse_tcp_rest(Address address, std::string_view rest, std::string_view whole,
                               std::uint16_t default_port) {
  std::string_view host = rest;
  std::string_view port_text;
  if (!rest.empty() && rest.front() == '[') {
    std::size_t close = rest.find(']');
    if (close == std::string_view::npos) {
      return fail(Errc::invalid_argument, fmt::format("address '{}': missing ']'", whole));
    }
    host = rest.substr(1, close - 1);
    std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        return fail(Errc::invalid_argument,
                    fmt::format("address '{}': unexpected text after ']'", whole));
      }
      port_text = after.substr(1);
      if (port_text.empty())
        return fail(Errc::invalid_argument, fmt::format("address '{}': bad port", whole));
    }
  } else if (std::count(rest.begin(), rest.end(), ':') == 1) {
    std::size_t colon = rest.find(':');
    host = rest.substr(0, colon);
    port_text = rest.substr(colon + 1);
    if (port_text.empty())
      return fail(Errc::invalid_argument, fmt::format("address '{}': bad port", whole));
  }
  if (host.empty()) {
    return fail(Errc::invalid_argument, fmt::format("address '{}': no host", whole));
  }
  address.host = std::string(host);
  address.port = default_port;
  if (!port_text.empty()) {
    auto port = parse_port(port_text, whole);
    if (!port) return fail(port.error());
    address.port = *port;
  }
  return address;
}

}  // namespace

Result<Address> parse_address(std::string_view text, std::uint16_t default_port) {
  if (text.empty()) return fail(Errc::invalid_argument, "empty address");
  Address address;
  for (std::string_view prefix : {"uds://", "unix://"}) {
    if (starts_with_nocase(text, prefix)) {
      address.kind = Address::Kind::unix_socket;
      address.path = std::string(text.substr(prefix.size()));
      if (address.path.empty()) {
        return fail(Errc::invalid_argument, fmt::format("address '{}': no path", text));
      }
      return address;
    }
  }
  if (text.front() == '/' && text.find("://") == std::string_view::npos) {
    address.kind = Address::Kind::unix_socket;
    address.path = std::string(text);
    return address;
  }
  std::string_view rest = text;
  if (starts_with_nocase(rest, "tcp4://")) {
    address.kind = Address::Kind::tcp4;
    rest.remove_prefix(7);
  } else if (starts_with_nocase(rest, "tcp6://")) {
    address.kind = Address::Kind::tcp6;
    rest.remove_prefix(7);
  } else if (starts_with_nocase(rest, "tcp://")) {
    rest.remove_prefix(6);
  } else if (rest.find("://") != std::string_view::npos) {
    return fail(Errc::invalid_argument, fmt::format("address '{}': unknown scheme", text));
  }
  return parse_tcp_rest(std::move(address), rest, text, default_port);
}

std::string Address::to_string() const {
  if (kind == Kind::unix_socket) return fmt::format("unix://{}", path);
  std::string_view scheme = kind == Kind::tcp4 ? "tcp4" : kind == Kind::tcp6 ? "tcp6" : "tcp";
  bool bracket = host.find(':') != std::string::npos;
  if (bracket) return fmt::format("{}://[{}]:{}", scheme, host, port);
  return fmt::format("{}://{}:{}", scheme, host, port);
}

}  // namespace hast
