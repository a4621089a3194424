// The hast.conf parser: tokens to the raw Config tree (reference/hast-spec.md §2.2).
//
// Method: recursive descent over the token list, at most three levels deep (global,
// resource, resource node), so no input can exhaust the stack. Where each statement may
// appear is one table (placement()); a statement anywhere else is "unexpected 'X' in Y
// section". Values are checked as they are read: the keyword sets, timeout > 0, HAST's
// length limits, and address syntax. Checking addresses here, with the line, is ours:
// HAST accepted any string and failed later at listen or connect time.
#include <charconv>
#include <climits>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "core/config/config.h"
#include "core/config/lexer.h"

namespace hast::config {
namespace {

enum class Section : std::uint8_t { global, global_node, resource, resource_node };

std::string_view section_name(Section section) {
  switch (section) {
    case Section::global:
      return "global section";
    case Section::global_node:
      return "node section";
    case Section::resource:
      return "resource section";
    case Section::resource_node:
      return "resource node section";
  }
  HAST_UNREACHABLE();
}

enum class Statement : std::uint8_t {
  control,
  pidfile,
  listen,
  replication,
  checksum,
  compression,
  timeout,
  exec,
  metaflush,
  name,
  local,
  remote,
  source,
  frontend,
  syncrate,
  busypoll,
};

constexpr unsigned bit(Section section) {
  return 1u << static_cast<unsigned>(section);
}

// The sections a statement may appear in (§2.2, plus our frontend, syncrate, busypoll).
unsigned placement(Statement statement) {
  constexpr unsigned global = bit(Section::global);
  constexpr unsigned global_node = bit(Section::global_node);
  constexpr unsigned resource = bit(Section::resource);
  constexpr unsigned resource_node = bit(Section::resource_node);
  switch (statement) {
    case Statement::control:
    case Statement::pidfile:
    case Statement::listen:
      return global | global_node;
    case Statement::replication:
    case Statement::checksum:
    case Statement::compression:
    case Statement::timeout:
    case Statement::exec:
    case Statement::syncrate:
    case Statement::busypoll:
      return global | resource;
    case Statement::metaflush:
      return global | resource | resource_node;
    case Statement::name:
    case Statement::local:
    case Statement::frontend:
      return resource | resource_node;
    case Statement::remote:
    case Statement::source:
      return resource_node;
  }
  HAST_UNREACHABLE();
}

// The statement `token` starts, if it starts one. `on` and `resource` are sections,
// handled by the callers where they are allowed.
std::optional<Statement> statement_of(const Token& token) {
  if (token.is_word("frontend")) return Statement::frontend;
  if (token.is_word("syncrate")) return Statement::syncrate;
  if (token.is_word("busypoll")) return Statement::busypoll;
  if (token.kind != TokenKind::keyword) return std::nullopt;
  switch (token.keyword) {
    case Keyword::control:
      return Statement::control;
    case Keyword::pidfile:
      return Statement::pidfile;
    case Keyword::listen:
      return Statement::listen;
    case Keyword::replication:
      return Statement::replication;
    case Keyword::checksum:
      return Statement::checksum;
    case Keyword::compression:
      return Statement::compression;
    case Keyword::timeout:
      return Statement::timeout;
    case Keyword::exec:
      return Statement::exec;
    case Keyword::metaflush:
      return Statement::metaflush;
    case Keyword::name:
      return Statement::name;
    case Keyword::local:
      return Statement::local;
    case Keyword::remote:
      return Statement::remote;
    case Keyword::source:
      return Statement::source;
    default:
      return std::nullopt;
  }
}

// True when `token` may be the optional argument of `frontend nbd` or `frontend fuse`:
// a string that does not start the next statement.
bool is_optional_argument(const Token& token) {
  return token.kind == TokenKind::string && !statement_of(token).has_value();
}

// The value of a run of decimal digits, or nullopt on overflow or a non-digit.
std::optional<std::uint64_t> parse_decimal(std::string_view digits) {
  std::uint64_t value = 0;
  const char* end = digits.data() + digits.size();
  auto [stop, error] = std::from_chars(digits.data(), end, value);
  if (error != std::errc() || stop != end || digits.empty()) return std::nullopt;
  return value;
}

class Parser {
 public:
  explicit Parser(const std::vector<Token>& tokens) : tokens_(tokens) {
    HAST_ASSERT(!tokens_.empty());
    HAST_ASSERT(tokens_.back().kind == TokenKind::end);
  }

  Result<Config> parse_file();

 private:
  const Token& peek() const { return tokens_[position_]; }
  // Consumes one token; the final `end` token is never consumed.
  const Token& take() {
    const Token& token = tokens_[position_];
    if (token.kind != TokenKind::end) position_++;
    HAST_ASSERT(position_ < tokens_.size());
    return token;
  }

  Result<void> parse_resource(Config& config);
  Result<NodeSection> parse_node_section(Section section);
  Result<void> expect_open_brace(std::string_view after);
  Result<void> parse_statement(Section section, Settings& settings);
  Result<void> parse_value(Statement statement, const Token& keyword, Settings& settings);
  Result<std::string> expect_string(const Token& keyword, std::string_view what,
                                    std::size_t size_max, std::string_view too_long);
  Result<ConfiguredAddress> expect_address(const Token& keyword, std::uint16_t port,
                                           std::string_view too_long);
  Result<std::optional<ConfiguredAddress>> optional_nbd_address(const Token& keyword);
  Result<ReplicationMode> parse_replication(const Token& keyword);
  Result<Checksum> parse_checksum(const Token& keyword);
  Result<Compression> parse_compression(const Token& keyword);
  Result<int> parse_timeout(const Token& keyword);
  Result<RemoteSetting> parse_remote(const Token& keyword);
  Result<FrontendConfig> parse_frontend(const Token& keyword);
  Result<std::optional<std::string>> optional_link(std::string_view kind);
  Result<std::uint64_t> parse_syncrate(const Token& keyword);
  Result<std::uint32_t> parse_busypoll(const Token& keyword);
  template <typename T>
  Result<T> expect_choice(const Token& keyword,
                          std::initializer_list<std::pair<Keyword, T>> choices);

  // "line N: expected WHAT after 'KEYWORD', found 'X'HINT".
  Unexpected expected(const Token& keyword, std::string_view what, const Token& found,
                      std::string_view hint = {}) const;

  const std::vector<Token>& tokens_;
  std::size_t position_ = 0;
  std::set<std::string, std::less<>> resource_names_;  // to reject a second `resource X`
};

Result<Config> Parser::parse_file() {
  Config config;
  while (peek().kind != TokenKind::end) {
    if (peek().is(Keyword::resource)) {
      HAST_TRY(parse_resource(config));
    } else if (peek().is(Keyword::on)) {
      auto node = parse_node_section(Section::global_node);
      if (!node) return fail(node.error());
      config.nodes.push_back(std::move(*node));
    } else {
      HAST_TRY(parse_statement(Section::global, config.global));
    }
  }
  HAST_ASSERT(position_ == tokens_.size() - 1);
  return config;
}

Result<void> Parser::parse_resource(Config& config) {
  const Token& keyword = take();
  HAST_ASSERT(keyword.is(Keyword::resource));
  auto name =
      expect_string(keyword, "a resource name", name_size_max, "Resource name is too long.");
  if (!name) return fail(name.error());
  if (!resource_names_.insert(*name).second) {
    return config_error(keyword.line, fmt::format("Resource {} configured more than once.", *name));
  }
  HAST_TRY(expect_open_brace(fmt::format("resource {}", *name)));
  ResourceSection resource;
  resource.name = std::move(*name);
  resource.line = keyword.line;
  while (peek().kind != TokenKind::close_brace) {
    if (peek().kind == TokenKind::end) {
      return config_error(peek().line,
                          fmt::format("unexpected end of file in resource section '{}' (opened "
                                      "at line {}; missing '}}')",
                                      resource.name, resource.line));
    }
    if (peek().is(Keyword::on)) {
      auto node = parse_node_section(Section::resource_node);
      if (!node) return fail(node.error());
      resource.nodes.push_back(std::move(*node));
    } else {
      HAST_TRY(parse_statement(Section::resource, resource.settings));
    }
  }
  take();
  config.resources.push_back(std::move(resource));
  return ok();
}

// `on NAME { statements }`, at global level or inside a resource.
Result<NodeSection> Parser::parse_node_section(Section section) {
  HAST_ASSERT(section == Section::global_node || section == Section::resource_node);
  const Token& keyword = take();
  HAST_ASSERT(keyword.is(Keyword::on));
  // HAST does not limit node names; a longer one simply never matches a host name.
  auto name = expect_string(keyword, "a node name", SIZE_MAX, "");
  if (!name) return fail(name.error());
  HAST_TRY(expect_open_brace(fmt::format("on {}", *name)));
  NodeSection node;
  node.node = std::move(*name);
  node.line = keyword.line;
  while (peek().kind != TokenKind::close_brace) {
    if (peek().kind == TokenKind::end) {
      return config_error(peek().line,
                          fmt::format("unexpected end of file in {} '{}' (opened at line {}; "
                                      "missing '}}')",
                                      section_name(section), node.node, node.line));
    }
    HAST_TRY(parse_statement(section, node.settings));
  }
  take();
  return node;
}

Result<void> Parser::expect_open_brace(std::string_view after) {
  const Token& token = take();
  if (token.kind == TokenKind::open_brace) return ok();
  return config_error(token.line,
                      fmt::format("expected '{{' after '{}', found {}", after, describe(token)));
}

// One statement of `section`: anything that is not a statement allowed there is an error.
Result<void> Parser::parse_statement(Section section, Settings& settings) {
  const Token& keyword = take();
  auto statement = statement_of(keyword);
  if (!statement || (placement(*statement) & bit(section)) == 0) {
    return config_error(
        keyword.line, fmt::format("unexpected {} in {}", describe(keyword), section_name(section)));
  }
  return parse_value(*statement, keyword, settings);
}

// Stores a parsed value, or passes its error on.
template <typename T, typename U>
Result<void> assign(std::optional<T>& field, Result<U> value) {
  if (!value) return fail(value.error());
  field = std::move(*value);
  return ok();
}

Result<void> Parser::parse_value(Statement statement, const Token& keyword, Settings& settings) {
  switch (statement) {
    case Statement::control:
      return assign(settings.control,
                    expect_address(keyword, default_port, "control argument is too long."));
    case Statement::pidfile:
      return assign(settings.pidfile, expect_string(keyword, "a path", path_size_max,
                                                    "pidfile argument is too long."));
    case Statement::listen: {
      auto value = expect_address(keyword, default_port, "listen argument is too long.");
      if (!value) return fail(value.error());
      settings.listen.push_back(std::move(*value));
      return ok();
    }
    case Statement::replication:
      return assign(settings.replication, parse_replication(keyword));
    case Statement::checksum:
      return assign(settings.checksum, parse_checksum(keyword));
    case Statement::compression:
      return assign(settings.compression, parse_compression(keyword));
    case Statement::timeout:
      return assign(settings.timeout_seconds, parse_timeout(keyword));
    case Statement::exec:
      return assign(settings.exec_path,
                    expect_string(keyword, "a path", path_size_max, "Exec path is too long."));
    case Statement::metaflush:
      return assign(settings.metaflush,
                    expect_choice<bool>(keyword, {{Keyword::on, true}, {Keyword::off, false}}));
    case Statement::name:
      return assign(settings.provider_name, expect_string(keyword, "a provider name", name_size_max,
                                                          "name argument is too long."));
    case Statement::local:
      return assign(settings.local_path,
                    expect_string(keyword, "a path", path_size_max, "local argument is too long."));
    case Statement::remote:
      return assign(settings.remote, parse_remote(keyword));
    case Statement::source:
      // Port 0: the kernel picks the source port (HAST binds the source with port 0).
      return assign(settings.source, expect_address(keyword, 0, "source argument is too long."));
    case Statement::frontend:
      return assign(settings.frontend, parse_frontend(keyword));
    case Statement::syncrate:
      return assign(settings.syncrate_bytes_per_second, parse_syncrate(keyword));
    case Statement::busypoll:
      return assign(settings.busypoll_us, parse_busypoll(keyword));
  }
  HAST_UNREACHABLE();
}

// A string argument: names and paths. Keywords and numbers are not strings (token.l).
Result<std::string> Parser::expect_string(const Token& keyword, std::string_view what,
                                          std::size_t size_max, std::string_view too_long) {
  const Token& token = take();
  if (token.kind == TokenKind::keyword) {
    return expected(keyword, what, token, " (keywords are reserved)");
  }
  if (token.kind == TokenKind::number) {
    return expected(keyword, what, token, " (a name or path cannot be all digits)");
  }
  if (token.kind != TokenKind::string) return expected(keyword, what, token);
  HAST_ASSERT(!token.text.empty());
  if (token.text.size() >= size_max) {
    HAST_ASSERT(!too_long.empty());
    return config_error(token.line, too_long);
  }
  return std::string(token.text);
}

Result<ConfiguredAddress> Parser::expect_address(const Token& keyword, std::uint16_t port,
                                                 std::string_view too_long) {
  auto text = expect_string(keyword, "an address", address_size_max, too_long);
  if (!text) return fail(text.error());
  HAST_ASSERT(position_ > 0);
  const Token& value = tokens_[position_ - 1];
  HAST_ASSERT(value.text == *text);
  auto address = parse_address(*text, port);
  if (!address) {
    return config_error(value.line, fmt::format("{}: {}", keyword.text, address.error().context()));
  }
  return ConfiguredAddress{std::move(*text), std::move(*address)};
}

Result<int> Parser::parse_timeout(const Token& keyword) {
  const Token& token = take();
  // "-5" lexes as a string; HAST's grammar rejected it, and it means what this says.
  bool negative = token.kind == TokenKind::string && token.text.size() > 1 &&
                  token.text.front() == '-' && parse_decimal(token.text.substr(1)).has_value();
  if (negative) return config_error(token.line, "Negative or zero timeout.");
  if (token.kind != TokenKind::number) return expected(keyword, "a number of seconds", token);
  auto value = parse_decimal(token.text);
  if (!value || *value > INT_MAX) {
    return config_error(token.line, fmt::format("timeout {} is too large", describe(token)));
  }
  if (*value == 0) return config_error(token.line, "Negative or zero timeout.");
  return static_cast<int>(*value);
}

Result<RemoteSetting> Parser::parse_remote(const Token& keyword) {
  if (peek().is(Keyword::none)) {
    take();
    return RemoteSetting{};
  }
  auto address = expect_address(keyword, default_port, "remote argument is too long.");
  if (!address) return fail(address.error());
  return RemoteSetting{std::move(*address)};
}

Result<ReplicationMode> Parser::parse_replication(const Token& keyword) {
  return expect_choice<ReplicationMode>(keyword, {
                                                     {Keyword::fullsync, ReplicationMode::fullsync},
                                                     {Keyword::memsync, ReplicationMode::memsync},
                                                     {Keyword::async, ReplicationMode::async},
                                                 });
}

Result<Checksum> Parser::parse_checksum(const Token& keyword) {
  return expect_choice<Checksum>(keyword, {
                                              {Keyword::none, Checksum::none},
                                              {Keyword::crc32, Checksum::crc32},
                                              {Keyword::sha256, Checksum::sha256},
                                          });
}

Result<Compression> Parser::parse_compression(const Token& keyword) {
  return expect_choice<Compression>(keyword, {
                                                 {Keyword::none, Compression::none},
                                                 {Keyword::hole, Compression::hole},
                                                 {Keyword::lzf, Compression::lzf},
                                             });
}

// One of a fixed set of keywords: "expected fullsync, memsync or async after ...".
template <typename T>
Result<T> Parser::expect_choice(const Token& keyword,
                                std::initializer_list<std::pair<Keyword, T>> choices) {
  HAST_ASSERT(choices.size() >= 2);
  const Token& token = take();
  std::string names;
  std::size_t index = 0;
  for (const auto& [choice, value] : choices) {
    if (token.is(choice)) return value;
    if (index > 0) names += index + 1 == choices.size() ? " or " : ", ";
    names += keyword_text(choice);
    index++;
  }
  return expected(keyword, names, token);
}

// `frontend nbd [ADDRESS] | fuse [LINK] | ublk [LINK] | none` (ours, DESIGN.md §7).
Result<FrontendConfig> Parser::parse_frontend(const Token& keyword) {
  const Token& kind = take();
  FrontendConfig frontend;
  if (kind.is(Keyword::none)) {
    frontend.kind = FrontendKind::none;
  } else if (kind.is_word("ublk")) {
    frontend.kind = FrontendKind::ublk;
    auto link = optional_link("ublk");
    if (!link) return fail(link.error());
    frontend.link = std::move(*link);
  } else if (kind.is_word("nbd")) {
    frontend.kind = FrontendKind::nbd;
    auto address = optional_nbd_address(keyword);
    if (!address) return fail(address.error());
    frontend.nbd_address = std::move(*address);
  } else if (kind.is_word("fuse")) {
    frontend.kind = FrontendKind::fuse;
    auto link = optional_link("fuse");
    if (!link) return fail(link.error());
    frontend.link = std::move(*link);
  } else {
    return expected(keyword, "nbd, fuse, ublk or none", kind);
  }
  return frontend;
}

// The address of `frontend nbd`, when one follows: a Unix socket or tcp://addr:port.
Result<std::optional<ConfiguredAddress>> Parser::optional_nbd_address(const Token& keyword) {
  if (!is_optional_argument(peek())) return std::optional<ConfiguredAddress>();
  auto address = expect_address(keyword, nbd_default_port, "frontend argument is too long.");
  if (!address) return fail(address.error());
  return std::optional<ConfiguredAddress>(std::move(*address));
}

// The link of `frontend fuse` or `frontend ublk`, when one follows: an absolute path.
Result<std::optional<std::string>> Parser::optional_link(std::string_view kind) {
  if (!is_optional_argument(peek())) return std::optional<std::string>();
  const Token& token = take();
  HAST_ASSERT(token.kind == TokenKind::string);
  if (token.text.size() >= path_size_max) {
    return config_error(token.line, "frontend argument is too long.");
  }
  if (token.text.front() != '/') {
    return config_error(
        token.line,
        fmt::format("frontend {} link {} is not an absolute path", kind, describe(token)));
  }
  return std::optional<std::string>(std::string(token.text));
}

// `syncrate NUM[K|M|G] | none`: bytes per second, K/M/G binary multiples (ours).
Result<std::uint64_t> Parser::parse_syncrate(const Token& keyword) {
  const Token& token = take();
  if (token.is(Keyword::none)) return std::uint64_t{0};
  if (token.kind != TokenKind::number && token.kind != TokenKind::string) {
    return expected(keyword, "a rate in bytes per second (NUM, NUM[K|M|G] or none)", token);
  }
  std::string_view digits = token.text;
  unsigned shift = 0;
  switch (digits.back()) {
    case 'K':
    case 'k':
      shift = 10;
      break;
    case 'M':
    case 'm':
      shift = 20;
      break;
    case 'G':
    case 'g':
      shift = 30;
      break;
    default:
      break;
  }
  if (shift > 0) digits.remove_suffix(1);
  auto value = parse_decimal(digits);
  if (!value) {
    return expected(keyword, "a rate in bytes per second (NUM, NUM[K|M|G] or none)", token);
  }
  if (*value > (UINT64_MAX >> shift)) {
    return config_error(token.line, fmt::format("syncrate {} is too large", describe(token)));
  }
  return *value << shift;
}

// `busypoll MICROSECONDS | none` (ours): 0 or none turns spinning off.
Result<std::uint32_t> Parser::parse_busypoll(const Token& keyword) {
  const Token& token = take();
  if (token.is(Keyword::none)) return std::uint32_t{0};
  if (token.kind != TokenKind::number) {
    return expected(keyword, "a number of microseconds or none", token);
  }
  auto value = parse_decimal(token.text);
  if (!value || *value > busypoll_us_max) {
    return config_error(token.line, fmt::format("busypoll {} is too large (at most {} us)",
                                                describe(token), busypoll_us_max));
  }
  return static_cast<std::uint32_t>(*value);
}

Unexpected Parser::expected(const Token& keyword, std::string_view what, const Token& found,
                            std::string_view hint) const {
  return config_error(found.line, fmt::format("expected {} after '{}', found {}{}", what,
                                              keyword.text, describe(found), hint));
}

}  // namespace

Result<Config> parse(std::string_view text) {
  auto tokens = tokenize(text);
  if (!tokens) return fail(tokens.error());
  return Parser(*tokens).parse_file();
}

}  // namespace hast::config
