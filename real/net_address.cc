// RealNetwork's addresses: HAST addresses (core/io/network.h) resolved into socket
// addresses, and socket addresses printed back in canonical form (real/net.h).
//
// Resolution order for a TCP host: a numeric literal (AI_NUMERICHOST, no resolver
// involved); then a name with AI_ADDRCONFIG, as HAST did; then a name without it, for a
// host whose only configured addresses are loopback ones (glibc ignores those for
// AI_ADDRCONFIG). The first result is used.
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cstddef>
#include <cstring>
#include <string>

#include <fmt/format.h>

#include "core/assert.h"
#include "real/net.h"
#include "real/net_socket.h"

namespace hast::real {
namespace net {
namespace {

int kind_family(Address::Kind kind) {
  switch (kind) {
    case Address::Kind::tcp4:
      return AF_INET;
    case Address::Kind::tcp6:
      return AF_INET6;
    case Address::Kind::tcp:
    case Address::Kind::unix_socket:
      return AF_UNSPEC;
  }
  HAST_UNREACHABLE();
}

std::string_view family_name(int family) {
  return family == AF_INET ? "IPv4" : family == AF_INET6 ? "IPv6" : "any";
}

bool is_numeric_host(const std::string& host) {
  in6_addr scratch{};
  return inet_pton(AF_INET, host.c_str(), &scratch) == 1 ||
         inet_pton(AF_INET6, host.c_str(), &scratch) == 1;
}

Result<SocketAddress> resolve_unix(const Address& address) {
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  if (address.path.empty() || address.path.size() >= sizeof un.sun_path) {
    return fail(Errc::invalid_argument, fmt::format("{}: a socket path has 1 to {} bytes",
                                                    address.to_string(), sizeof un.sun_path - 1));
  }
  std::memcpy(un.sun_path, address.path.data(), address.path.size());
  SocketAddress result;
  std::memcpy(&result.storage, &un, sizeof un);
  result.length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address.path.size() + 1);
  return result;
}

int lookup(const Address& address, int family, int flags, addrinfo** found) {
  addrinfo hints{};
  hints.ai_family = family;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  hints.ai_flags = flags | AI_NUMERICSERV;
  std::string port = std::to_string(address.port);
  return getaddrinfo(address.host.c_str(), port.c_str(), &hints, found);
}

Error lookup_error(int rc, const Address& address, int family) {
  if (is_numeric_host(address.host)) {
    return Error(Errc::invalid_argument,
                 fmt::format("{}: not an {} address", address.to_string(), family_name(family)));
  }
  std::string reason = rc == EAI_SYSTEM ? std::strerror(errno) : gai_strerror(rc);
  return Error(Errc::not_found,
               fmt::format("{}: cannot resolve {}: {}", address.to_string(), address.host, reason));
}

Result<SocketAddress> resolve_tcp(const Address& address, int family) {
  addrinfo* found = nullptr;
  int rc = lookup(address, family, AI_NUMERICHOST, &found);
  if (rc != 0 && !is_numeric_host(address.host)) {
    rc = lookup(address, family, AI_ADDRCONFIG, &found);
    if (rc != 0) rc = lookup(address, family, 0, &found);
  }
  if (rc != 0) return fail(lookup_error(rc, address, family));
  HAST_ASSERT(found != nullptr);
  HAST_ASSERT(found->ai_addrlen <= sizeof(sockaddr_storage));
  SocketAddress result;
  std::memcpy(&result.storage, found->ai_addr, found->ai_addrlen);
  result.length = found->ai_addrlen;
  freeaddrinfo(found);
  return result;
}

// "a.b.c.d" for an IPv4 address; "x::y" (with "%scope" when scoped) for IPv6, except
// that an IPv4-mapped address is printed as the IPv4 address it carries.
std::string ip_host(const sockaddr_storage& storage, std::uint16_t& port) {
  char text[INET6_ADDRSTRLEN] = {};
  if (storage.ss_family == AF_INET) {
    sockaddr_in in{};
    std::memcpy(&in, &storage, sizeof in);
    port = ntohs(in.sin_port);
    return inet_ntop(AF_INET, &in.sin_addr, text, sizeof text);
  }
  HAST_ASSERT(storage.ss_family == AF_INET6);
  sockaddr_in6 in6{};
  std::memcpy(&in6, &storage, sizeof in6);
  port = ntohs(in6.sin6_port);
  if (IN6_IS_ADDR_V4MAPPED(&in6.sin6_addr)) {
    return inet_ntop(AF_INET, &in6.sin6_addr.s6_addr[12], text, sizeof text);
  }
  std::string host = inet_ntop(AF_INET6, &in6.sin6_addr, text, sizeof text);
  if (in6.sin6_scope_id != 0) host += fmt::format("%{}", in6.sin6_scope_id);
  return host;
}

// The path of a Unix socket address: empty when unnamed, "@name" when abstract.
std::string unix_path(const sockaddr_storage& storage, socklen_t length) {
  sockaddr_un un{};
  std::memcpy(&un, &storage, std::min<std::size_t>(length, sizeof un));
  std::size_t offset = offsetof(sockaddr_un, sun_path);
  if (length <= offset) return {};
  std::size_t size = std::min<std::size_t>(length - offset, sizeof un.sun_path);
  if (un.sun_path[0] == '\0') return "@" + std::string(un.sun_path + 1, size - 1);
  return std::string(un.sun_path, strnlen(un.sun_path, size));
}

}  // namespace

Result<SocketAddress> resolve(const Address& address, int family) {
  if (!address.is_tcp()) return resolve_unix(address);
  int own = kind_family(address.kind);
  if (own != AF_UNSPEC && family != AF_UNSPEC && own != family) {
    return fail(Errc::invalid_argument,
                fmt::format("{}: not an {} address", address.to_string(), family_name(family)));
  }
  return resolve_tcp(address, own != AF_UNSPEC ? own : family);
}

Address to_address(const sockaddr_storage& storage, socklen_t length) {
  Address address;
  if (storage.ss_family == AF_UNIX) {
    address.kind = Address::Kind::unix_socket;
    address.path = unix_path(storage, length);
    return address;
  }
  address.kind = Address::Kind::tcp;
  address.host = ip_host(storage, address.port);
  return address;
}

Error socket_error(int error_number, std::string_view what, const Address& address) {
  HAST_ASSERT(error_number > 0);
  return errno_error(-error_number, fmt::format("{} {}", what, address.to_string()));
}

}  // namespace net

Result<Address> canonical_address(const Address& address) {
  if (!address.is_tcp()) return address;
  auto resolved = net::resolve(address, AF_UNSPEC);
  if (!resolved) return fail(resolved.error());
  return net::to_address(resolved->storage, resolved->length);
}

}  // namespace hast::real
