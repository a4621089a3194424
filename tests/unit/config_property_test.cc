// hast.conf: properties over random and mutated input, and the printer's round trip.
//
// Method: three generators feed the parser: raw bytes, "token soup" (random sequences of
// the words, braces, comments and newlines a hast.conf is made of, so that the parser's
// deeper states are reached), and valid files with random byte mutations. For every
// input: no crash; an error is Errc::invalid_argument naming a line inside the text; a
// success prints to text that parses back to the same settings, and resolves or fails
// cleanly.
#include <string>
#include <string_view>
#include <vector>

#include <rapidcheck.h>
#include <catch2/catch.hpp>

#include "core/config/config.h"
#include "tests/support/property.h"
#include "tests/unit/config_support.h"

namespace config = hast::config;
using hast::test::host;

namespace {

constexpr std::string_view valid_files[] = {
    "listen tcp://0.0.0.0\nresource shared {\nlocal /dev/ada0p4\non fbsd_h1 {\n"
    "remote tcp://10.0.0.231\n}\non fbsd_h2 {\nremote tcp://10.0.0.233\n}\n}\n",
    "on node1 {\n control uds:///tmp/n1.ctl\n pidfile /tmp/n1.pid\n listen 127.0.0.1:7771\n}\n"
    "resource r {\n replication async\n syncrate 10M\n busypoll 50\n"
    " on node1 {\n  local /tmp/n1.img\n"
    "  remote 127.0.0.2:7772\n  source 127.0.0.1\n  frontend nbd unix:///tmp/n1.sock\n }\n}\n",
    "checksum sha256 # trailing comment\ncompression lzf\ntimeout 3\nmetaflush off\n"
    "resource fuse {\n frontend fuse /dev/hast/x\n local /x\n on fbsd_h1 { remote none }\n}\n",
};

// The pieces token soup is made of.
constexpr std::string_view soup_words[] = {
    "resource",
    "on",
    "{",
    "}",
    "\n",
    " ",
    "# c\n",
    "local",
    "remote",
    "source",
    "name",
    "control",
    "pidfile",
    "listen",
    "timeout",
    "exec",
    "metaflush",
    "replication",
    "checksum",
    "compression",
    "syncrate",
    "busypoll",
    "frontend",
    "nbd",
    "fuse",
    "ublk",
    "none",
    "on",
    "off",
    "async",
    "lzf",
    "crc32",
    "0",
    "20",
    "5M",
    "-1",
    "/dev/sdb",
    "fbsd_h1",
    "fbsd_h2",
    "r",
    "tcp://10.0.0.2",
    "[::1]:1",
    "x:0",
    "\"",
    ";",
    "\r\n",
    "hostid3735928559",
    "99999999999999999999",
};

int line_count(std::string_view text) {
  int newlines = 0;
  for (char c : text)
    newlines += c == '\n' ? 1 : 0;
  return newlines + 1;
}

// The N of "line N: ...", or 0.
int error_line(std::string_view context) {
  if (context.substr(0, 5) != "line ") return 0;
  int line = 0;
  std::size_t i = 5;
  for (; i < context.size() && context[i] >= '0' && context[i] <= '9' && line < 100000000; i++)
    line = line * 10 + (context[i] - '0');
  return i > 5 && context.substr(i, 2) == ": " ? line : 0;
}

// The settings of two trees are equal, section by section (line numbers aside).
bool same_tree(const config::Config& a, const config::Config& b) {
  if (!(a.global == b.global) || a.nodes.size() != b.nodes.size()) return false;
  if (a.resources.size() != b.resources.size()) return false;
  for (std::size_t i = 0; i < a.nodes.size(); i++) {
    if (a.nodes[i].node != b.nodes[i].node || !(a.nodes[i].settings == b.nodes[i].settings))
      return false;
  }
  for (std::size_t i = 0; i < a.resources.size(); i++) {
    const auto& x = a.resources[i];
    const auto& y = b.resources[i];
    if (x.name != y.name || !(x.settings == y.settings) || x.nodes.size() != y.nodes.size())
      return false;
    for (std::size_t j = 0; j < x.nodes.size(); j++) {
      if (x.nodes[j].node != y.nodes[j].node || !(x.nodes[j].settings == y.nodes[j].settings))
        return false;
    }
  }
  return true;
}

// The property every input must satisfy.
void check_input(std::string_view text) {
  auto parsed = config::parse(text);
  if (!parsed) {
    RC_ASSERT(parsed.error().code() == hast::Errc::invalid_argument);
    int line = error_line(parsed.error().context());
    RC_ASSERT(line >= 1);
    RC_ASSERT(line <= line_count(text));
    return;
  }
  std::string printed = config::print(*parsed);
  auto reparsed = config::parse(printed);
  RC_ASSERT(reparsed.has_value());
  RC_ASSERT(same_tree(*parsed, *reparsed));
  RC_ASSERT(config::print(*reparsed) == printed);
  auto node = config::resolve(*parsed, host("fbsd_h1"));
  if (node) {
    RC_ASSERT(!node->listen.empty());
  } else {
    RC_ASSERT(error_line(node.error().context()) >= 1);
  }
}

}  // namespace

TEST_CASE("Config: random bytes never crash the parser", "[unit][config]") {
  hast::test::property("parse(random bytes) is a Config or an error with a line",
                       [](const std::string& text) { check_input(text); });
}

TEST_CASE("Config: token soup never crashes the parser", "[unit][config]") {
  hast::test::property("parse(token soup) is a Config or an error with a line", [] {
    auto indexes = *rc::gen::container<std::vector<std::size_t>>(
        rc::gen::inRange<std::size_t>(0, std::size(soup_words)));
    std::string text;
    for (std::size_t index : indexes) {
      text += soup_words[index];
      text += ' ';
    }
    check_input(text);
  });
}

TEST_CASE("Config: mutated valid files never crash the parser", "[unit][config]") {
  hast::test::property("parse(mutated file) is a Config or an error with a line", [] {
    auto which = *rc::gen::inRange<std::size_t>(0, std::size(valid_files));
    std::string text(valid_files[which]);
    auto mutations = *rc::gen::inRange(1, 8);
    for (int i = 0; i < mutations; i++) {
      auto kind = *rc::gen::inRange(0, 3);
      auto at = *rc::gen::inRange<std::size_t>(0, text.size() + 1);
      auto byte = *rc::gen::arbitrary<char>();
      if (kind == 0 && at < text.size()) text[at] = byte;
      if (kind == 1) text.insert(at, 1, byte);
      if (kind == 2 && at < text.size()) text.erase(at, 1);
    }
    check_input(text);
  });
}

TEST_CASE("Config: printing round-trips every valid file", "[unit][config]") {
  for (std::string_view text : valid_files) {
    INFO(text);
    auto parsed = config::parse(text);
    REQUIRE(parsed.has_value());
    std::string printed = config::print(*parsed);
    auto reparsed = config::parse(printed);
    REQUIRE(reparsed.has_value());
    CHECK(same_tree(*parsed, *reparsed));
    CHECK(config::print(*reparsed) == printed);
  }
  auto parsed = config::parse(valid_files[0]);
  REQUIRE(parsed);
  CHECK(config::print(*parsed) ==
        "listen tcp://0.0.0.0\n"
        "resource shared {\n"
        "    local /dev/ada0p4\n"
        "    on fbsd_h1 {\n"
        "        remote tcp://10.0.0.231\n"
        "    }\n"
        "    on fbsd_h2 {\n"
        "        remote tcp://10.0.0.233\n"
        "    }\n"
        "}\n");
}
