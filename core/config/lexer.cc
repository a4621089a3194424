// The hast.conf lexer: words, numbers, keywords, braces, comments and line counting.
#include "core/config/lexer.h"

#include <array>
#include <utility>

#include <fmt/format.h>

namespace hast::config {
namespace {

constexpr std::array<std::pair<Keyword, std::string_view>, 24> keywords = {{
    {Keyword::control, "control"},
    {Keyword::pidfile, "pidfile"},
    {Keyword::listen, "listen"},
    {Keyword::replication, "replication"},
    {Keyword::checksum, "checksum"},
    {Keyword::compression, "compression"},
    {Keyword::timeout, "timeout"},
    {Keyword::exec, "exec"},
    {Keyword::metaflush, "metaflush"},
    {Keyword::resource, "resource"},
    {Keyword::name, "name"},
    {Keyword::local, "local"},
    {Keyword::remote, "remote"},
    {Keyword::source, "source"},
    {Keyword::on, "on"},
    {Keyword::off, "off"},
    {Keyword::fullsync, "fullsync"},
    {Keyword::memsync, "memsync"},
    {Keyword::async, "async"},
    {Keyword::none, "none"},
    {Keyword::crc32, "crc32"},
    {Keyword::sha256, "sha256"},
    {Keyword::hole, "hole"},
    {Keyword::lzf, "lzf"},
}};

// Words longer than this are shortened in messages, so that a fuzzer's megabyte of
// letters does not become a megabyte of error text.
constexpr std::size_t describe_length_max = 40;

bool is_word_char(char c) {
  if (c >= 'a' && c <= 'z') return true;
  if (c >= 'A' && c <= 'Z') return true;
  if (c >= '0' && c <= '9') return true;
  return c == '.' || c == '-' || c == '_' || c == '/' || c == ':' || c == '[' || c == ']';
}

bool all_digits(std::string_view word) {
  HAST_ASSERT(!word.empty());
  for (char c : word) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// A word token: a number, a keyword or a string (the order token.l's rules give).
Token word_token(std::string_view word, int line) {
  HAST_ASSERT(!word.empty());
  HAST_ASSERT(line >= 1);
  Token token;
  token.text = word;
  token.line = line;
  if (all_digits(word)) {
    token.kind = TokenKind::number;
  } else if (auto keyword = keyword_of(word)) {
    token.kind = TokenKind::keyword;
    token.keyword = *keyword;
  } else {
    token.kind = TokenKind::string;
  }
  return token;
}

std::string describe_char(char c) {
  auto byte = static_cast<unsigned char>(c);
  if (c == '"' || c == '\'') {
    return fmt::format("unexpected character {} (hast.conf has no quoting)", c);
  }
  if (byte >= 0x21 && byte < 0x7f) return fmt::format("unexpected character '{}'", c);
  return fmt::format("unexpected byte 0x{:02x}", byte);
}

}  // namespace

std::string_view keyword_text(Keyword keyword) {
  auto index = static_cast<std::size_t>(keyword);
  HAST_ASSERT(index < keywords.size());
  HAST_ASSERT(keywords[index].first == keyword);
  return keywords[index].second;
}

std::optional<Keyword> keyword_of(std::string_view word) {
  for (const auto& [keyword, text] : keywords) {
    if (text == word) return keyword;
  }
  return std::nullopt;
}

Result<std::vector<Token>> tokenize(std::string_view text) {
  std::vector<Token> tokens;
  int line = 1;
  std::size_t i = 0;
  while (i < text.size()) {
    char c = text[i];
    if (c == '\n') {
      line++;
      i++;
    } else if (c == ' ' || c == '\t' || c == '\r') {
      i++;
    } else if (c == '#') {
      while (i < text.size() && text[i] != '\n')
        i++;
    } else if (c == '{' || c == '}') {
      Token token;
      token.kind = c == '{' ? TokenKind::open_brace : TokenKind::close_brace;
      token.text = text.substr(i, 1);
      token.line = line;
      tokens.push_back(token);
      i++;
    } else if (is_word_char(c)) {
      std::size_t start = i;
      while (i < text.size() && is_word_char(text[i]))
        i++;
      tokens.push_back(word_token(text.substr(start, i - start), line));
    } else {
      return config_error(line, describe_char(c));
    }
  }
  Token end;
  end.kind = TokenKind::end;
  end.line = line;
  tokens.push_back(end);
  HAST_ASSERT(tokens.back().kind == TokenKind::end);
  return tokens;
}

Unexpected config_error(int line, std::string_view problem) {
  HAST_ASSERT(line >= 1);
  HAST_ASSERT(!problem.empty());
  return fail(Errc::invalid_argument, fmt::format("line {}: {}", line, problem));
}

std::string describe(const Token& token) {
  switch (token.kind) {
    case TokenKind::end:
      return "end of file";
    case TokenKind::open_brace:
      return "'{'";
    case TokenKind::close_brace:
      return "'}'";
    case TokenKind::keyword:
    case TokenKind::number:
    case TokenKind::string:
      break;
  }
  HAST_ASSERT(!token.text.empty());
  if (token.text.size() <= describe_length_max) return fmt::format("'{}'", token.text);
  return fmt::format("'{}...'", token.text.substr(0, describe_length_max));
}

}  // namespace hast::config
