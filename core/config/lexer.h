// The hast.conf lexer (reference/hast-spec.md §2.1, FreeBSD's token.l).
//
// Rules, as token.l has them:
// - `#` starts a comment that runs to the end of the line; spaces and tabs separate
//   tokens; newlines count lines (1-based here; HAST counted from 0).
// - A word is a maximal run of [A-Za-z0-9._/:[]-]. All digits: a number. Exactly one of
//   HAST's keywords: that keyword (keywords are reserved everywhere, so a resource or
//   node cannot be called `on` or `none`). Anything else: a string. There is no quoting.
// - `{` and `}` are tokens of their own.
// Differences, both deliberate: a carriage return counts as a space (files edited on
// Windows), and any other character (a quote, `;`, `@`, a control byte) is an error
// naming its line, where flex silently echoed it to stdout and went on.
//
// Our extension words (frontend, syncrate, busypoll, nbd, fuse, ublk) are not keywords here: they
// lex as strings and the parser recognises them by position.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace hast::config {

enum class Keyword : std::uint8_t {
  control,
  pidfile,
  listen,
  replication,
  checksum,
  compression,
  timeout,
  exec,
  metaflush,
  resource,
  name,
  local,
  remote,
  source,
  on,
  off,
  fullsync,
  memsync,
  async,
  none,
  crc32,
  sha256,
  hole,
  lzf,
};

// The keyword's spelling in hast.conf.
std::string_view keyword_text(Keyword keyword);

// The keyword spelled `word`, if it is one (case-sensitive, as token.l).
std::optional<Keyword> keyword_of(std::string_view word);

enum class TokenKind : std::uint8_t { keyword, number, string, open_brace, close_brace, end };

struct Token {
  TokenKind kind = TokenKind::end;
  Keyword keyword = Keyword::control;  // meaningful for TokenKind::keyword only
  std::string_view text;               // a view into the lexed text; empty for `end`
  int line = 0;                        // 1-based

  bool is(Keyword k) const { return kind == TokenKind::keyword && keyword == k; }
  // True for a string token spelled `word` (a contextual extension keyword).
  bool is_word(std::string_view word) const { return kind == TokenKind::string && text == word; }
};

// Splits `text` into tokens, ending with one TokenKind::end token on the last line. The
// tokens view `text`, which must outlive them. Errors: "line N: unexpected character".
Result<std::vector<Token>> tokenize(std::string_view text);

// The failure "line N: <problem>" (Errc::invalid_argument) every config error uses.
Unexpected config_error(int line, std::string_view problem);

// A token for messages: 'word' (quoted, long words shortened), '{', '}', end of file.
std::string describe(const Token& token);

}  // namespace hast::config
