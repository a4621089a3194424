// Result<T>, errors and addresses.
#include <catch2/catch.hpp>

#include "core/io/network.h"
#include "core/result.h"

using hast::Errc;
using hast::Result;

namespace {

Result<int> half(int value) {
  if (value % 2 != 0) return hast::fail(Errc::invalid_argument, "odd value");
  return value / 2;
}

Result<void> halve_twice(int value, int& out) {
  auto first = half(value);
  if (!first) return hast::fail(first.error().wrap("first half"));
  auto second = half(*first);
  HAST_TRY(second);
  out = *second;
  return hast::ok();
}

}  // namespace

TEST_CASE("Result: values, errors and propagation", "[unit][result]") {
  auto good = half(8);
  REQUIRE(good.has_value());
  CHECK(*good == 4);
  CHECK(good.value_or(0) == 4);
  auto bad = half(3);
  REQUIRE(!bad);
  CHECK(bad.error().code() == Errc::invalid_argument);
  CHECK(bad.error().message() == "odd value: invalid_argument");
  CHECK(bad.value_or(-1) == -1);

  int out = 0;
  CHECK(halve_twice(8, out).has_value());
  CHECK(out == 2);
  auto wrapped = halve_twice(3, out);
  REQUIRE(!wrapped);
  CHECK(wrapped.error().message() == "first half: odd value: invalid_argument");
  auto inner = halve_twice(6, out);
  REQUIRE(!inner);
  CHECK(inner.error().context() == "odd value");
}

TEST_CASE("Address: HAST's syntax", "[unit][address]") {
  using hast::Address;
  auto parse = [](std::string_view text) { return hast::parse_address(text, 8457); };
  auto a = parse("tcp://10.0.0.1:7000");
  REQUIRE(a);
  CHECK(a->host == "10.0.0.1");
  CHECK(a->port == 7000);
  CHECK(a->to_string() == "tcp://10.0.0.1:7000");
  CHECK(parse("hasta")->port == 8457);
  CHECK(parse("TCP4://hostb")->kind == Address::Kind::tcp4);
  auto v6 = parse("tcp6://[::1]:9000");
  REQUIRE(v6);
  CHECK(v6->host == "::1");
  CHECK(v6->port == 9000);
  CHECK(v6->to_string() == "tcp6://[::1]:9000");
  auto bare_v6 = parse("fe80::1");
  REQUIRE(bare_v6);
  CHECK(bare_v6->host == "fe80::1");
  CHECK(bare_v6->port == 8457);
  CHECK(parse("uds:///var/run/hastctl")->path == "/var/run/hastctl");
  CHECK(parse("unix:///tmp/x")->kind == Address::Kind::unix_socket);
  CHECK(parse("/var/run/hastctl")->path == "/var/run/hastctl");
  for (std::string_view bad : {"", "tcp://", "host:0", "host:65536", "host:12x", "[::1", "[::1]x",
                               "sctp://h", "unix://", "host:"}) {
    INFO(bad);
    auto result = parse(bad);
    REQUIRE(!result);
    CHECK(result.error().code() == Errc::invalid_argument);
  }
}
