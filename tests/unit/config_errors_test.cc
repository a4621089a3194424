// hast.conf: every error names its 1-based line and the problem (HAST's §2.5 messages
// where HAST has them); keywords and numbers are not names; placement per §2.2.
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <catch2/catch.hpp>

#include "core/config/config.h"
#include "core/config/lexer.h"
#include "tests/unit/config_support.h"

using hast::test::error_text;
using hast::test::host;
namespace config = hast::config;

namespace {

struct Case {
  std::string text;
  std::string error;
};

void check_cases(const std::vector<Case>& cases) {
  for (const auto& [text, error] : cases) {
    INFO(text);
    CHECK(error_text(text) == error);
    auto parsed = config::parse(text);
    if (!parsed) CHECK(parsed.error().code() == hast::Errc::invalid_argument);
  }
}

std::string long_word(std::size_t length) {
  return "/" + std::string(length - 1, 'a');
}

}  // namespace

TEST_CASE("Config: validation messages of HAST with 1-based lines", "[unit][config]") {
  check_cases({
      {"resource r { local /a on fbsd_h1 { remote none } }\n\n\n"
       "resource r { local /b }\n",
       "line 4: Resource r configured more than once."},
      {"# comment\nresource r {\n  local /a\n  on elsewhere { remote 10.0.0.2 }\n}\n",
       "line 2: No resource r configuration for this node (acceptable node names: fbsd_h1, "
       "4C4C4544-0042-3510-8052-B4C04F4B4E31, hostid3735928559)."},
      {"resource r {\n  local /a\n  remote_is_missing_here\n}\n",
       "line 3: unexpected 'remote_is_missing_here' in resource section"},
      {"\nresource r {\n  local /a\n  on fbsd_h1 { source 10.0.0.1 }\n}\n",
       "line 2: Remote address not configured for resource r."},
      {"resource r {\n  on fbsd_h1 { remote 10.0.0.2 }\n}\n",
       "line 1: Path to local component not configured for resource r."},
      {"\n\ntimeout 0\n", "line 3: Negative or zero timeout."},
      {"resource r {\n timeout -3\n}\n", "line 2: Negative or zero timeout."},
      {"timeout 2147483648\n", "line 1: timeout '2147483648' is too large"},
      {"timeout 99999999999999999999999\n",
       "line 1: timeout '99999999999999999999999' is too large"},
  });
  // The order of the per-resource checks: node section, then remote, then local.
  CHECK(error_text("resource r { }").find("No resource r configuration") != std::string::npos);
  CHECK(error_text("resource r { on fbsd_h1 { } }") ==
        "line 1: Remote address not configured for resource r.");
  // The first failing resource is reported.
  CHECK(error_text("resource a { local /a on fbsd_h1 { remote none } }\n"
                   "resource b { on fbsd_h1 { remote none } }\n") ==
        "line 2: Path to local component not configured for resource b.");
}

TEST_CASE("Config: over-long arguments", "[unit][config]") {
  struct Limit {
    std::string statement;  // "{}" stands for the argument
    std::size_t size;       // bytes including HAST's NUL: the longest accepted is size - 1
    std::string message;
  };
  const std::vector<Limit> limits = {
      {"control {}", 1024, "control argument is too long."},
      {"pidfile {}", 1024, "pidfile argument is too long."},
      {"listen {}", 1024, "listen argument is too long."},
      {"exec {}", 1024, "Exec path is too long."},
      {"resource r {{ name {} }}", 256, "name argument is too long."},
      {"resource r {{ local {} }}", 1024, "local argument is too long."},
      {"resource r {{ on x {{ remote {} }} }}", 1024, "remote argument is too long."},
      {"resource r {{ on x {{ source {} }} }}", 1024, "source argument is too long."},
      {"resource r {{ frontend fuse {} }}", 1024, "frontend argument is too long."},
      {"resource r {{ frontend nbd {} }}", 1024, "frontend argument is too long."},
  };
  for (const auto& limit : limits) {
    INFO(limit.statement);
    auto fits = fmt::format(fmt::runtime(limit.statement), long_word(limit.size - 1));
    CHECK(config::parse(fits).has_value());
    auto too_long = fmt::format(fmt::runtime("\n" + limit.statement), long_word(limit.size));
    auto parsed = config::parse(too_long);
    REQUIRE(!parsed);
    CHECK(parsed.error().context() == "line 2: " + limit.message);
  }
  CHECK(config::parse(fmt::format("resource {} {{ }}", std::string(255, 'r'))).has_value());
  CHECK(error_text(fmt::format("resource {} {{ }}", std::string(256, 'r'))) ==
        "line 1: Resource name is too long.");
}

TEST_CASE("Config: misplaced statements and broken sections name the line", "[unit][config]") {
  check_cases({
      // Placement (§2.2).
      {"resource r {\n local /a\n on fbsd_h1 {\n  remote 10.0.0.2\n\n\n  timeout 5\n }\n}\n",
       "line 7: unexpected 'timeout' in resource node section"},
      {"resource r {\n  remote 10.0.0.2\n}\n", "line 2: unexpected 'remote' in resource section"},
      {"on h {\n  exec /x\n}\n", "line 2: unexpected 'exec' in node section"},
      {"on h { on g { } }", "line 1: unexpected 'on' in node section"},
      {"resource r { on h { on g { } } }", "line 1: unexpected 'on' in resource node section"},
      {"resource r { resource s { } }", "line 1: unexpected 'resource' in resource section"},
      {"on h { resource s { } }", "line 1: unexpected 'resource' in node section"},
      {"resource r { control /x }", "line 1: unexpected 'control' in resource section"},
      {"resource r { listen /x }", "line 1: unexpected 'listen' in resource section"},
      {"name x", "line 1: unexpected 'name' in global section"},
      {"local /x", "line 1: unexpected 'local' in global section"},
      {"remote 10.0.0.1", "line 1: unexpected 'remote' in global section"},
      {"source 10.0.0.1", "line 1: unexpected 'source' in global section"},
      {"on h { metaflush on }", "line 1: unexpected 'metaflush' in node section"},
      {"resource r { on h { replication async } }",
       "line 1: unexpected 'replication' in resource node section"},
      {"frontend nbd", "line 1: unexpected 'frontend' in global section"},
      {"on h { frontend nbd }", "line 1: unexpected 'frontend' in node section"},
      {"resource r { on h { syncrate 1 } }",
       "line 1: unexpected 'syncrate' in resource node section"},
      {"on h { syncrate 1 }", "line 1: unexpected 'syncrate' in node section"},
      {"resource r { on h { busypoll 50 } }",
       "line 1: unexpected 'busypoll' in resource node section"},
      // Structure.
      {"\n}\n", "line 2: unexpected '}' in global section"},
      {"{", "line 1: unexpected '{' in global section"},
      {"42", "line 1: unexpected '42' in global section"},
      {"fullsync", "line 1: unexpected 'fullsync' in global section"},
      {"resource r {\n local /a\n",
       "line 3: unexpected end of file in resource section 'r' "
       "(opened at line 1; missing '}')"},
      {"resource r {\n on h {\n remote x\n\n",
       "line 5: unexpected end of file in resource node section 'h' (opened at line 2; missing "
       "'}')"},
      {"on h {",
       "line 1: unexpected end of file in node section 'h' (opened at line 1; "
       "missing '}')"},
      {"resource r\nlocal /a", "line 2: expected '{' after 'resource r', found 'local'"},
      {"on h", "line 1: expected '{' after 'on h', found end of file"},
      {"resource", "line 1: expected a resource name after 'resource', found end of file"},
      {"resource {", "line 1: expected a resource name after 'resource', found '{'"},
  });
}

TEST_CASE("Config: bad values name the line and what was expected", "[unit][config]") {
  check_cases({
      // Values (§2.2).
      {"replication sync",
       "line 1: expected fullsync, memsync or async after 'replication', "
       "found 'sync'"},
      {"checksum md5", "line 1: expected none, crc32 or sha256 after 'checksum', found 'md5'"},
      {"compression\nzstd",
       "line 2: expected none, hole or lzf after 'compression', found "
       "'zstd'"},
      {"metaflush yes", "line 1: expected on or off after 'metaflush', found 'yes'"},
      {"timeout 5s", "line 1: expected a number of seconds after 'timeout', found '5s'"},
      {"timeout", "line 1: expected a number of seconds after 'timeout', found end of file"},
      {"resource r { on h { source none } }",
       "line 1: expected an address after 'source', found 'none' (keywords are reserved)"},
      {"pidfile 1234",
       "line 1: expected a path after 'pidfile', found '1234' (a name or path "
       "cannot be all digits)"},
      {"syncrate fast",
       "line 1: expected a rate in bytes per second (NUM, NUM[K|M|G] or none) "
       "after 'syncrate', found 'fast'"},
      {"syncrate 5T",
       "line 1: expected a rate in bytes per second (NUM, NUM[K|M|G] or none) "
       "after 'syncrate', found '5T'"},
      {"syncrate 17179869184G", "line 1: syncrate '17179869184G' is too large"},
      {"syncrate 18446744073709551616",
       "line 1: expected a rate in bytes per second (NUM, "
       "NUM[K|M|G] or none) after 'syncrate', found "
       "'18446744073709551616'"},
      {"busypoll fast",
       "line 1: expected a number of microseconds or none after 'busypoll', found 'fast'"},
      {"busypoll 10001", "line 1: busypoll '10001' is too large (at most 10000 us)"},
      {"resource r { busypoll -1 }",
       "line 1: expected a number of microseconds or none after 'busypoll', found '-1'"},
      {"resource r { frontend iscsi }",
       "line 1: expected nbd, fuse, ublk or none after 'frontend', found 'iscsi'"},
      {"resource r { frontend fuse dev/hast/r }",
       "line 1: frontend fuse link 'dev/hast/r' is not an absolute path"},
      {"resource r {\n frontend nbd tcp://1.2.3.4:0\n}",
       "line 2: frontend: address 'tcp://1.2.3.4:0': port 0 out of range 1-65535"},
      // Addresses are checked where they are written (HAST only failed at listen time).
      {"\nlisten tcp://10.0.0.1:99999",
       "line 2: listen: address 'tcp://10.0.0.1:99999': "
       "port 99999 out of range 1-65535"},
      {"control tcp://[::1", "line 1: control: address 'tcp://[::1': missing ']'"},
      {"resource r {\n on h {\n  source\n   tcp://x:y\n }\n}\n",
       "line 4: source: address 'tcp://x:y': bad port"},
      {"resource r { on h { remote sctp://x } }",
       "line 1: remote: address 'sctp://x': unknown scheme"},
  });
}

TEST_CASE("Config: the lexer's characters, comments and lines", "[unit][config]") {
  check_cases({
      {"resource r {\n  local \"/dev/sdb\"\n}\n",
       "line 2: unexpected character \" (hast.conf has no quoting)"},
      {"control /a;\n", "line 1: unexpected character ';'"},
      {"\n\n\nexec /bin/hook@x", "line 4: unexpected character '@'"},
      {"exec /a\x01", "line 1: unexpected byte 0x01"},
      {std::string("exec /a\0", 8), "line 1: unexpected byte 0x00"},
      {"exec /caf\xc3\xa9", "line 1: unexpected byte 0xc3"},
      // Comments run to the end of the line and may follow a word directly.
      {"# resource r {\ntimeout 5# no space needed\n# } ; \" @\n", ""},
      // Windows line endings: the carriage return is a space; lines still count.
      {"timeout 5\r\n\r\ntimeout 0\r\n", "line 3: Negative or zero timeout."},
  });
  // Keywords are case-sensitive: `Timeout` is a string.
  CHECK(error_text("Timeout 5") == "line 1: unexpected 'Timeout' in global section");
  // Long words are shortened in messages.
  CHECK(error_text(std::string(1000, 'x')) ==
        fmt::format("line 1: unexpected '{}...' in global section", std::string(40, 'x')));
  // The lexer's view of a few words.
  auto tokens = config::tokenize("on 42 4a2 /dev/ada0p4 [::1]:8457 { } on-x");
  REQUIRE(tokens.has_value());
  REQUIRE(tokens->size() == 9);
  CHECK((*tokens)[0].is(config::Keyword::on));
  CHECK((*tokens)[1].kind == config::TokenKind::number);
  CHECK((*tokens)[2].kind == config::TokenKind::string);
  CHECK((*tokens)[3].text == "/dev/ada0p4");
  CHECK((*tokens)[4].text == "[::1]:8457");
  CHECK((*tokens)[5].kind == config::TokenKind::open_brace);
  CHECK((*tokens)[6].kind == config::TokenKind::close_brace);
  CHECK((*tokens)[7].text == "on-x");
  CHECK((*tokens)[8].kind == config::TokenKind::end);
}

TEST_CASE("Config: keywords and numbers are not names", "[unit][config]") {
  for (std::string_view keyword :
       {"control", "pidfile", "listen",    "replication", "checksum", "compression",
        "timeout", "exec",    "metaflush", "resource",    "name",     "local",
        "remote",  "source",  "on",        "off",         "fullsync", "memsync",
        "async",   "none",    "crc32",     "sha256",      "hole",     "lzf"}) {
    INFO(keyword);
    REQUIRE(config::keyword_of(keyword).has_value());
    CHECK(config::keyword_text(*config::keyword_of(keyword)) == keyword);
    CHECK(error_text(fmt::format("resource {} {{ }}", keyword)) ==
          fmt::format("line 1: expected a resource name after 'resource', found '{}' "
                      "(keywords are reserved)",
                      keyword));
    CHECK(error_text(fmt::format("resource r {{\n on {} {{ }} }}", keyword)) ==
          fmt::format("line 2: expected a node name after 'on', found '{}' (keywords are "
                      "reserved)",
                      keyword));
    CHECK(error_text(fmt::format("resource r {{ local {} }}", keyword)) ==
          fmt::format("line 1: expected a path after 'local', found '{}' (keywords are "
                      "reserved)",
                      keyword));
  }
  for (std::string_view word :
       {"frontend", "syncrate", "busypoll", "nbd", "fuse", "ublk", "Resource"}) {
    CHECK(!config::keyword_of(word).has_value());
  }
  CHECK(error_text("resource 123 { }") ==
        "line 1: expected a resource name after 'resource', found '123' (a name or path cannot "
        "be all digits)");
  CHECK(error_text("on 42 { }") ==
        "line 1: expected a node name after 'on', found '42' (a name or path cannot be all "
        "digits)");
  // Digits with anything else are a string.
  CHECK(config::parse("resource 1a { on 4c4c4544-0042 { } }").has_value());
}
