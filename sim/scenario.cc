// The .scn parser (see scenario.h for the grammar).
//
// Method: the text is cut into lines; each line into words. The `config` block is
// collected verbatim and handed to core/config (its "line N" errors are moved to file
// lines). Every other statement is parsed by one small function per keyword, which
// reads its words from a Words cursor; any error carries the line it was found on.
#include "sim/scenario.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>

#include <fmt/format.h>

namespace hast::sim {
namespace {

using namespace std::chrono_literals;

// The words of one statement, consumed left to right.
class Words {
 public:
  Words(std::vector<std::string_view> words, int line) : words_(std::move(words)), line_(line) {}
  bool done() const { return next_ >= words_.size(); }
  std::string_view peek() const { return done() ? std::string_view() : words_[next_]; }
  std::string_view take() { return done() ? std::string_view() : words_[next_++]; }
  bool take_if(std::string_view word) {
    if (peek() != word) return false;
    next_++;
    return true;
  }
  int line() const { return line_; }
  // The words from the current one on, joined by single blanks.
  std::string rest() const {
    std::string text;
    for (std::size_t i = next_; i < words_.size(); i++) {
      if (!text.empty()) text += ' ';
      text += words_[i];
    }
    return text;
  }

 private:
  std::vector<std::string_view> words_;
  std::size_t next_ = 0;
  int line_;
};

class Parser;
using Status = Result<void>;

std::vector<std::string_view> split_words(std::string_view line) {
  std::vector<std::string_view> words;
  std::size_t at = 0;
  while (at < line.size()) {
    while (at < line.size() && (line[at] == ' ' || line[at] == '\t' || line[at] == '\r'))
      at++;
    if (at >= line.size() || line[at] == '#') break;
    std::size_t end = at;
    while (end < line.size() && line[end] != ' ' && line[end] != '\t' && line[end] != '\r')
      end++;
    words.push_back(line.substr(at, end - at));
    at = end;
  }
  return words;
}

std::optional<double> parse_number(std::string_view text) {
  if (text.empty() || text.size() > 32) return std::nullopt;
  double value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  if (!std::isfinite(value) || value < 0) return std::nullopt;
  return value;
}

std::optional<std::uint64_t> parse_count(std::string_view text) {
  std::uint64_t value = 0;
  if (text.empty()) return std::nullopt;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// "250ms", "1.5s": at most one simulated day.
std::optional<Duration> parse_time(std::string_view text) {
  static constexpr std::pair<std::string_view, double> units[] = {
      {"us", 1e3}, {"ms", 1e6}, {"s", 1e9}, {"m", 60e9}};
  for (const auto& [unit, nanoseconds] : units) {
    if (text.size() <= unit.size() || !text.ends_with(unit)) continue;
    std::string_view digits = text.substr(0, text.size() - unit.size());
    if (digits.back() < '0' || digits.back() > '9') continue;  // "ms" ends with "s" too
    auto number = parse_number(digits);
    if (!number || *number * nanoseconds > 86400e9) return std::nullopt;
    return Duration(static_cast<Duration::rep>(std::llround(*number * nanoseconds)));
  }
  return std::nullopt;
}

// "512", "64K", "16M", "1G": at most 1 TiB.
std::optional<std::uint64_t> parse_size(std::string_view text) {
  std::uint64_t scale = 1;
  if (!text.empty()) {
    char suffix = text.back();
    if (suffix == 'K' || suffix == 'k') scale = 1ULL << 10;
    if (suffix == 'M' || suffix == 'm') scale = 1ULL << 20;
    if (suffix == 'G' || suffix == 'g') scale = 1ULL << 30;
    if (scale != 1) text.remove_suffix(1);
  }
  auto number = parse_count(text);
  if (!number || *number > (1ULL << 40) / scale) return std::nullopt;
  return *number * scale;
}

std::optional<double> parse_probability(std::string_view text) {
  auto number = parse_number(text);
  if (!number || *number > 1) return std::nullopt;
  return number;
}

std::optional<replication::HookEvent> parse_hook(std::string_view name) {
  using replication::HookEvent;
  for (HookEvent event :
       {HookEvent::role, HookEvent::connect, HookEvent::disconnect, HookEvent::syncstart,
        HookEvent::syncdone, HookEvent::syncintr, HookEvent::split_brain}) {
    if (replication::hook_event_name(event) == name) return event;
  }
  return std::nullopt;
}

class Parser {
 public:
  Parser(std::string_view text, std::string_view file) : text_(text) {
    scenario_.file = std::string(file);
  }
  Result<Scenario> run();

 private:
  Unexpected error(int line, std::string what) const {
    return fail(Errc::invalid_argument, fmt::format("{}:{}: {}", scenario_.file, line, what));
  }
  Status statement(Words& words);
  Status config_block(int& line, std::size_t& at);
  Status check_config(int line);
  Status set(Words& words);
  Status workload(Words& words);
  Status workload_mix(Words& words);
  Status at(Words& words);
  Status action(Words& words, Action& action);
  Status disk_action(Words& words, Action& action);
  Status link_action(Words& words, Action& action);
  Status may_lose(Words& words, Action& action);
  Status expectation(Words& words, Expectation& expect);
  Status node_expectation(Words& words, Expectation& expect);
  Status finish();

  Result<std::uint32_t> node(Words& words, std::string_view what);
  Result<Duration> time(Words& words, std::string_view what);
  Result<std::uint64_t> size(Words& words, std::string_view what);
  Result<std::uint64_t> count(Words& words, std::string_view what);
  Result<double> probability(Words& words, std::string_view what);
  Result<meta::Role> role(Words& words);
  Result<Comparison> comparison(Words& words, std::string_view what, bool sizes);
  Status end_of(Words& words, std::string_view statement);

  std::string_view text_;
  Scenario scenario_;
  bool have_config_ = false;
  bool have_duration_ = false;
  int duration_line_ = 1;
  Duration last_at_{0};
  bool any_at_ = false;
  Duration latest_{0};  // the last action time plus its `within`
};

Result<Scenario> Parser::run() {
  std::size_t at = 0;
  int line = 0;
  while (at < text_.size()) {
    std::size_t end = text_.find('\n', at);
    if (end == std::string_view::npos) end = text_.size();
    std::string_view content = text_.substr(at, end - at);
    line++;
    at = end + 1;
    Words words(split_words(content), line);
    if (words.done()) continue;
    if (words.peek() == "config") {
      words.take();
      if (auto ended = end_of(words, "config"); !ended) return fail(ended.error());
      if (auto block = config_block(line, at); !block) return fail(block.error());
      continue;
    }
    if (auto parsed = statement(words); !parsed) return fail(parsed.error());
  }
  if (auto done = finish(); !done) return fail(done.error());
  return std::move(scenario_);
}

Status Parser::statement(Words& words) {
  std::string_view keyword = words.take();
  if (keyword == "name") {
    if (words.done()) return error(words.line(), "`name` needs a title");
    scenario_.name = words.rest();
    return {};
  }
  if (keyword == "set") return set(words);
  if (keyword == "workload") return workload(words);
  if (keyword == "at") return at(words);
  if (keyword == "duration") {
    auto value = time(words, "duration");
    if (!value) return fail(value.error());
    scenario_.duration = *value;
    have_duration_ = true;
    duration_line_ = words.line();
    return end_of(words, "duration");
  }
  if (keyword == "end") return error(words.line(), "`end` without a `config` block");
  return error(words.line(), fmt::format("unknown statement '{}' (expected name, config, set, "
                                         "workload, duration or at)",
                                         keyword));
}

// Collects the lines after `config` up to a line holding only `end`; `line` and `at`
// move past that line.
Status Parser::config_block(int& line, std::size_t& at) {
  if (have_config_) return error(line, "a second `config` block (one hast.conf per scenario)");
  have_config_ = true;
  int first = line;
  scenario_.config_line = first;
  while (at < text_.size()) {
    std::size_t end = text_.find('\n', at);
    if (end == std::string_view::npos) end = text_.size();
    std::string_view content = text_.substr(at, end - at);
    at = end + 1;
    line++;
    auto words = split_words(content);
    if (words.size() == 1 && words[0] == "end") return check_config(first);
    scenario_.config_text += content;
    scenario_.config_text += '\n';
  }
  return error(first, "the `config` block has no `end` line");
}

// The hast.conf must parse and describe one resource on two nodes that dial each other.
Status Parser::check_config(int line) {
  auto parsed = config::parse(scenario_.config_text);
  if (!parsed) {
    // core/config says "line N: ..." relative to the block; name the file's line.
    std::string_view context = parsed.error().context();
    int inner = 0;
    auto [end, code] = std::from_chars(context.data() + std::min<std::size_t>(5, context.size()),
                                       context.data() + context.size(), inner);
    if (context.starts_with("line ") && code == std::errc() && inner > 0) {
      std::string_view rest(end, static_cast<std::size_t>(context.data() + context.size() - end));
      if (rest.starts_with(": ")) rest.remove_prefix(2);
      return error(line + inner, fmt::format("hast.conf: {}", rest));
    }
    return error(line, fmt::format("hast.conf: {}", context));
  }
  if (parsed->resources.size() != 1) {
    return error(line, fmt::format("the config must define exactly one resource, not {}",
                                   parsed->resources.size()));
  }
  const config::ResourceSection& resource = parsed->resources.front();
  if (resource.nodes.size() != 2 || resource.nodes[0].node == resource.nodes[1].node) {
    return error(line + resource.line, fmt::format("resource {} must have two `on NODE` "
                                                   "sections, one per node",
                                                   resource.name));
  }
  scenario_.resource = resource.name;
  for (int i = 0; i < 2; i++) {
    const config::NodeSection& other = resource.nodes[1 - i];
    scenario_.nodes[i] = resource.nodes[i].node;
    const auto& remote = other.settings.remote;
    if (!remote || !remote->address || !remote->address->address.is_tcp()) {
      return error(line + other.line, fmt::format("node {} needs a tcp `remote` (it names {}'s "
                                                  "address)",
                                                  other.node, resource.nodes[i].node));
    }
    scenario_.hosts[i] = remote->address->address.host;
  }
  if (scenario_.hosts[0] == scenario_.hosts[1]) {
    return error(line, "both nodes' remote addresses name the same host");
  }
  auto mode = resource.settings.replication.value_or(
      parsed->global.replication.value_or(config::default_replication));
  scenario_.mode = mode;
  scenario_.timeout_seconds = resource.settings.timeout_seconds.value_or(
      parsed->global.timeout_seconds.value_or(config::default_timeout_seconds));
  return {};
}

Status Parser::set(Words& words) {
  std::string_view key = words.take();
  ScenarioSettings& settings = scenario_.settings;
  if (key == "keepalive" || key == "reconnect" || key == "jitter") {
    auto value = time(words, key);
    if (!value) return fail(value.error());
    if (key != "jitter" && *value < 1ms)
      return error(words.line(), fmt::format("{} below 1ms", key));
    (key == "keepalive"   ? settings.keepalive
     : key == "reconnect" ? settings.reconnect
                          : settings.jitter) = *value;
  } else if (key == "disk-size" || key == "extent-size") {
    auto value = size(words, key);
    if (!value) return fail(value.error());
    bool disk = key == "disk-size";
    std::uint64_t low = disk ? 1 << 20 : 4096, high = disk ? 1ULL << 30 : 64 << 20;
    if (*value < low || *value > high || *value % 4096 != 0) {
      return error(words.line(),
                   fmt::format("{} must be a multiple of 4K in [{}, {}]", key, low, high));
    }
    if (disk) settings.disk_bytes = *value;
    if (!disk) settings.extent_size = static_cast<std::uint32_t>(*value);
  } else if (key == "clock-offset") {
    auto id = node(words, "clock-offset");
    if (!id) return fail(id.error());
    auto value = time(words, "clock-offset");
    if (!value) return fail(value.error());
    settings.clock_offset[*id] = *value;
  } else if (key == "keep-dirty") {
    auto value = count(words, key);
    if (!value) return fail(value.error());
    if (*value < 1 || *value > 1024) return error(words.line(), "keep-dirty must be in [1, 1024]");
    settings.keep_dirty = static_cast<std::uint32_t>(*value);
  } else {
    return error(words.line(), fmt::format("unknown setting '{}' (keepalive, reconnect, "
                                           "disk-size, extent-size, keep-dirty, jitter, "
                                           "clock-offset)",
                                           key));
  }
  return end_of(words, "set");
}

// `workload mix KIND WEIGHT...`: the kinds not named get weight 0.
Status Parser::workload_mix(Words& words) {
  static const std::map<std::string_view, std::uint32_t WorkloadOptions::*, std::less<>> kinds = {
      {"read", &WorkloadOptions::read_weight},
      {"write", &WorkloadOptions::write_weight},
      {"flush", &WorkloadOptions::flush_weight},
      {"discard", &WorkloadOptions::discard_weight},
      {"zeroes", &WorkloadOptions::write_zeroes_weight}};
  WorkloadOptions& options = scenario_.workload;
  if (words.done()) return error(words.line(), "`workload mix` needs KIND WEIGHT pairs");
  for (auto& [kind, member] : kinds)
    options.*member = 0;
  while (!words.done()) {
    std::string_view kind = words.take();
    auto found = kinds.find(kind);
    if (found == kinds.end()) {
      return error(words.line(), fmt::format("unknown request kind '{}' (read, write, flush, "
                                             "discard, zeroes)",
                                             kind));
    }
    auto weight = count(words, fmt::format("the weight of {}", kind));
    if (!weight) return fail(weight.error());
    if (*weight > 1000) return error(words.line(), "a weight above 1000");
    options.*found->second = static_cast<std::uint32_t>(*weight);
  }
  std::uint64_t total = 0;
  for (auto& [kind, member] : kinds)
    total += options.*member;
  if (total == 0) return error(words.line(), "every weight of the mix is 0");
  return {};
}

Status Parser::workload(Words& words) {
  WorkloadOptions& options = scenario_.workload;
  std::string_view key = words.take();
  if (key == "mix") return workload_mix(words);
  if (key == "fua") {
    auto value = probability(words, "fua");
    if (!value) return fail(value.error());
    options.fua_probability = *value;
  } else if (key == "size") {
    auto value = size(words, "size");
    if (!value) return fail(value.error());
    if (*value < 512 || *value > (1 << 20) || *value % 512 != 0) {
      return error(words.line(), "the largest request must be a multiple of 512 in [512, 1M]");
    }
    options.request_bytes_max = *value;
  } else if (key == "rate") {
    auto value = count(words, "rate");
    if (!value) return fail(value.error());
    if (*value < 1 || *value > 1'000'000)
      return error(words.line(), "rate must be in [1, 1000000]");
    options.mean_interval = Duration(1'000'000'000 / static_cast<Duration::rep>(*value));
  } else if (key == "inflight") {
    auto value = count(words, "inflight");
    if (!value) return fail(value.error());
    if (*value < 1 || *value > 256) return error(words.line(), "inflight must be in [1, 256]");
    options.in_flight_max = *value;
  } else if (key == "run") {
    auto from = time(words, "the workload's start");
    if (!from) return fail(from.error());
    auto to = time(words, "the workload's end");
    if (!to) return fail(to.error());
    if (*to <= *from) return error(words.line(), "the workload must end after it starts");
    scenario_.workload_from = *from;
    scenario_.workload_to = *to;
    latest_ = std::max(latest_, *to);
  } else {
    return error(words.line(), fmt::format("unknown workload setting '{}' (mix, fua, size, rate, "
                                           "inflight, run)",
                                           key));
  }
  return end_of(words, "workload");
}

Status Parser::at(Words& words) {
  Action action;
  action.line = words.line();
  std::string_view when = words.peek();
  bool relative = when.starts_with('+');
  if (relative) {
    words.take();
    auto delta = parse_time(when.substr(1));
    if (!delta) return error(words.line(), fmt::format("bad relative time '{}'", when));
    action.at = last_at_ + *delta;
  } else {
    auto value = time(words, "`at`");
    if (!value) return fail(value.error());
    action.at = *value;
  }
  if (action.at > std::chrono::hours(24)) {
    return error(words.line(), "actions must happen within one simulated day");
  }
  if (any_at_ && action.at < last_at_) {
    return error(words.line(), fmt::format("time goes backwards: {} after {} (write actions in "
                                           "time order)",
                                           format_duration(action.at), format_duration(last_at_)));
  }
  any_at_ = true;
  last_at_ = action.at;
  action.text = words.rest();
  if (words.done()) return error(words.line(), "`at TIME` needs an action");
  if (auto parsed = this->action(words, action); !parsed) return fail(parsed.error());
  Duration within = action.kind == ActionKind::expect ? action.expect.within.value_or(0s) : 0s;
  latest_ = std::max(latest_, action.at + within + action.duration);
  scenario_.actions.push_back(std::move(action));
  return {};
}

Status Parser::action(Words& words, Action& action) {
  static const std::map<std::string_view, ActionKind, std::less<>> simple = {
      {"create", ActionKind::create},     {"start", ActionKind::start},
      {"kill", ActionKind::kill},         {"power-loss", ActionKind::power_loss},
      {"restart", ActionKind::restart},   {"role", ActionKind::role},
      {"recreate", ActionKind::recreate}, {"pause", ActionKind::pause}};
  std::string_view verb = words.take();
  if (verb == "disk") return disk_action(words, action);
  if (verb == "partition" || verb == "clog" || verb == "heal") {
    action.kind = verb == "partition" ? ActionKind::partition
                  : verb == "clog"    ? ActionKind::clog
                                      : ActionKind::heal;
    return link_action(words, action);
  }
  if (verb == "workload") {
    std::string_view what = words.take();
    if (what != "start" && what != "stop") return error(words.line(), "`workload start` or `stop`");
    action.kind = what == "start" ? ActionKind::workload_start : ActionKind::workload_stop;
    return end_of(words, "workload");
  }
  if (verb == "may-lose") return may_lose(words, action);
  if (verb == "expect") {
    action.kind = ActionKind::expect;
    return expectation(words, action.expect);
  }
  if (verb == "swap-disk") {
    action.kind = ActionKind::swap_disk;
    auto id = node(words, "swap-disk");
    if (!id) return fail(id.error());
    action.node = *id;
    std::string_view kind = words.take();
    if (kind != "empty" && kind != "foreign") {
      return error(words.line(), "swap-disk NODE empty|foreign");
    }
    action.swap = kind == "empty" ? SwapKind::empty : SwapKind::foreign;
    return end_of(words, "swap-disk");
  }
  auto found = simple.find(verb);
  if (found == simple.end()) {
    return error(words.line(), fmt::format("unknown action '{}'", verb));
  }
  action.kind = found->second;
  auto id = node(words, verb);
  if (!id) return fail(id.error());
  action.node = *id;
  if (action.kind == ActionKind::role || action.kind == ActionKind::recreate ||
      (action.kind == ActionKind::restart && words.take_if("as"))) {
    auto value = role(words);
    if (!value) return fail(value.error());
    action.role = *value;
  } else if (action.kind == ActionKind::pause) {
    auto value = time(words, "the pause");
    if (!value) return fail(value.error());
    action.duration = *value;
  }
  return end_of(words, verb);
}

Status Parser::disk_action(Words& words, Action& action) {
  auto id = node(words, "disk");
  if (!id) return fail(id.error());
  action.node = *id;
  std::string_view what = words.take();
  if (what == "slow") {
    action.kind = ActionKind::disk_slow;
    auto value = time(words, "the disk latency");
    if (!value) return fail(value.error());
    action.duration = *value;
  } else if (what == "fail") {
    action.kind = ActionKind::disk_fail;
    std::string_view op = words.take();
    if (op != "read" && op != "write" && op != "flush") {
      return error(words.line(), "disk NODE fail read|write|flush [PROBABILITY]");
    }
    action.disk_op = op == "read" ? DiskOp::read : op == "write" ? DiskOp::write : DiskOp::flush;
    if (!words.done()) {
      auto value = probability(words, "the failure probability");
      if (!value) return fail(value.error());
      action.probability = *value;
    }
  } else if (what == "latent") {
    action.kind = ActionKind::disk_latent;
    auto offset = size(words, "the latent error's offset");
    if (!offset) return fail(offset.error());
    action.offset = *offset;
    action.length = 512;
    if (!words.done()) {
      auto length = size(words, "the latent error's length");
      if (!length) return fail(length.error());
      action.length = *length;
    }
    if (action.offset % 512 != 0 || action.length % 512 != 0 || action.length == 0) {
      return error(words.line(), "latent errors take a sector-aligned offset and length");
    }
  } else if (what == "lose-writes" || what == "misdirect") {
    action.kind = what == "misdirect" ? ActionKind::disk_misdirect : ActionKind::disk_lose_writes;
    auto value = probability(words, what);
    if (!value) return fail(value.error());
    action.probability = *value;
  } else if (what == "healthy") {
    action.kind = ActionKind::disk_healthy;
  } else {
    return error(words.line(), fmt::format("unknown disk fault '{}' (slow, fail, latent, "
                                           "lose-writes, misdirect, healthy)",
                                           what));
  }
  return end_of(words, "disk");
}

// partition A B | A -> B; clog A B TIME | A -> B TIME; heal [A B].
Status Parser::link_action(Words& words, Action& action) {
  std::string_view verb = action.kind == ActionKind::partition ? "partition"
                          : action.kind == ActionKind::clog    ? "clog"
                                                               : "heal";
  if (action.kind == ActionKind::heal && words.done()) return {};
  auto from = node(words, verb);
  if (!from) return fail(from.error());
  action.node = *from;
  action.one_way = action.kind != ActionKind::heal && words.take_if("->");
  auto to = node(words, verb);
  if (!to) return fail(to.error());
  if (*to == *from) return error(words.line(), fmt::format("{} needs two different nodes", verb));
  action.peer = *to;
  if (action.kind == ActionKind::clog) {
    auto value = time(words, "the clog");
    if (!value) return fail(value.error());
    action.duration = *value;
  }
  return end_of(words, verb);
}

// may-lose NODE [since connect | since TIME | all]
Status Parser::may_lose(Words& words, Action& action) {
  action.kind = ActionKind::may_lose;
  auto id = node(words, "may-lose");
  if (!id) return fail(id.error());
  action.node = *id;
  if (words.take_if("all")) {
    action.since = LossSince::all;
  } else if (words.take_if("since")) {
    if (words.take_if("connect")) {
      action.since = LossSince::connect;
    } else {
      auto value = time(words, "`since`");
      if (!value) return fail(value.error());
      action.since = LossSince::time;
      action.duration = *value;
    }
  }
  return end_of(words, "may-lose");
}

Status Parser::expectation(Words& words, Expectation& expect) {
  std::string_view first = words.peek();
  if (first.empty()) return error(words.line(), "`expect` needs an expectation");
  if (words.take_if("split-brain")) {
    expect.kind = ExpectKind::split_brain;
    if (words.take_if("on")) {
      auto id = node(words, "split-brain on");
      if (!id) return fail(id.error());
      expect.on = *id;
    }
  } else if (words.take_if("no")) {
    if (!words.take_if("split-brain")) return error(words.line(), "`expect no split-brain`");
    expect.kind = ExpectKind::no_split_brain;
  } else if (words.take_if("identical")) {
    expect.kind = ExpectKind::identical;
  } else if (words.take_if("converged")) {
    expect.kind = ExpectKind::converged;
  } else if (words.take_if("writes")) {
    expect.kind = ExpectKind::writes;
    std::string_view which = words.take();
    if (which != "acked" && which != "failed") {
      return error(words.line(), "`expect writes acked|failed [OP] N`");
    }
    expect.failed_writes = which == "failed";
    auto value = comparison(words, "the write count", false);
    if (!value) return fail(value.error());
    expect.count = *value;
  } else {
    if (auto parsed = node_expectation(words, expect); !parsed) return fail(parsed.error());
  }
  if (words.take_if("within")) {
    auto value = time(words, "`within`");
    if (!value) return fail(value.error());
    expect.within = *value;
  }
  return end_of(words, "expect");
}

Status Parser::node_expectation(Words& words, Expectation& expect) {
  auto id = node(words, "expect");
  if (!id) return fail(id.error());
  expect.node = *id;
  if (words.peek() == "down" || words.peek() == "up") {
    expect.kind = words.take() == "down" ? ExpectKind::down : ExpectKind::up;
    return {};
  }
  if (words.take_if("holds")) {
    if (!words.take_if("acked")) return error(words.line(), "`expect NODE holds acked`");
    expect.kind = ExpectKind::holds_acked;
    return {};
  }
  if (words.take_if("hook")) {
    expect.kind = ExpectKind::hook;
    auto event = parse_hook(words.take());
    if (!event)
      return error(words.line(),
                   "unknown hook event (role, connect, disconnect, "
                   "syncstart, syncdone, syncintr, split-brain)");
    expect.event = *event;
    if (!words.done() && words.peek() != "within") {
      auto value = comparison(words, "the event count", false);
      if (!value) return fail(value.error());
      expect.count = *value;
    }
    return {};
  }
  expect.kind = ExpectKind::state;
  bool any = false;
  while (!words.done() && words.peek() != "within") {
    std::string_view field = words.take();
    any = true;
    if (field == "role") {
      auto value = role(words);
      if (!value) return fail(value.error());
      expect.role = *value;
    } else if (field == "status") {
      std::string_view value = words.take();
      if (value != "complete" && value != "degraded") {
        return error(words.line(), "status is complete or degraded");
      }
      expect.status = std::string(value);
    } else if (field == "dirty") {
      auto value = comparison(words, "dirty", true);
      if (!value) return fail(value.error());
      expect.dirty = *value;
    } else if (field == "sync" || field == "inconsistent") {
      std::string_view value = words.take();
      bool sync = field == "sync";
      if (sync ? value != "running" && value != "done" : value != "yes" && value != "no") {
        return error(words.line(), sync ? "sync is running or done" : "inconsistent yes|no");
      }
      (sync ? expect.syncing : expect.inconsistent) = value == "running" || value == "yes";
    } else {
      return error(words.line(), fmt::format("unknown expectation '{}' (down, up, role, status, "
                                             "dirty, sync, inconsistent, hook, holds acked)",
                                             field));
    }
  }
  if (!any) return error(words.line(), "`expect NODE` needs what to expect of it");
  return {};
}

Status Parser::finish() {
  if (!have_config_) return error(1, "no `config` block: the scenario needs a hast.conf");
  if (scenario_.actions.empty()) return error(1, "no `at` statement: nothing happens");
  Duration fallback = latest_ + 100ms;
  if (!have_duration_) scenario_.duration = fallback;
  if (have_duration_ && scenario_.duration < latest_) {
    return error(duration_line_,
                 fmt::format("duration {} ends before the last action or `within` ({})",
                             format_duration(scenario_.duration), format_duration(latest_)));
  }
  return {};
}

Result<std::uint32_t> Parser::node(Words& words, std::string_view what) {
  std::string_view name = words.take();
  if (!have_config_) {
    return error(words.line(),
                 "the `config` block must come before the actions (it names "
                 "the nodes)");
  }
  for (std::uint32_t id = 0; id < 2; id++) {
    if (scenario_.nodes[id] == name) return id;
  }
  if (name.empty()) return error(words.line(), fmt::format("{} needs a node name", what));
  return error(words.line(), fmt::format("unknown node '{}' (the config names {} and {})", name,
                                         scenario_.nodes[0], scenario_.nodes[1]));
}

Result<Duration> Parser::time(Words& words, std::string_view what) {
  std::string_view text = words.take();
  auto value = parse_time(text);
  if (!value) {
    return error(words.line(),
                 fmt::format("{}: bad time '{}' (a number and us, ms, s or m)", what, text));
  }
  return *value;
}

Result<std::uint64_t> Parser::size(Words& words, std::string_view what) {
  std::string_view text = words.take();
  auto value = parse_size(text);
  if (!value) return error(words.line(), fmt::format("{}: bad size '{}'", what, text));
  return *value;
}

Result<std::uint64_t> Parser::count(Words& words, std::string_view what) {
  std::string_view text = words.take();
  auto value = parse_count(text);
  if (!value) return error(words.line(), fmt::format("{}: bad number '{}'", what, text));
  return *value;
}

Result<double> Parser::probability(Words& words, std::string_view what) {
  std::string_view text = words.take();
  auto value = parse_probability(text);
  if (!value)
    return error(words.line(), fmt::format("{}: bad probability '{}' (0 to 1)", what, text));
  return *value;
}

Result<meta::Role> Parser::role(Words& words) {
  std::string_view text = words.take();
  auto value = meta::parse_role(text);
  if (!value)
    return error(words.line(), fmt::format("bad role '{}' (init, primary, secondary)", text));
  return *value;
}

// [OP] VALUE or OPVALUE: "0", "> 0", ">0", ">= 1M".
Result<Comparison> Parser::comparison(Words& words, std::string_view what, bool sizes) {
  static constexpr std::pair<std::string_view, Comparison::Op> ops[] = {
      {">=", Comparison::Op::ge}, {"<=", Comparison::Op::le}, {"!=", Comparison::Op::ne},
      {">", Comparison::Op::gt},  {"<", Comparison::Op::lt},  {"=", Comparison::Op::eq}};
  std::string_view text = words.take();
  Comparison result;
  for (const auto& [name, op] : ops) {
    if (!text.starts_with(name)) continue;
    result.op = op;
    text.remove_prefix(name.size());
    if (text.empty()) text = words.take();
    break;
  }
  auto value = sizes ? parse_size(text) : parse_count(text);
  if (!value) return error(words.line(), fmt::format("{}: bad value '{}'", what, text));
  result.value = *value;
  return result;
}

Status Parser::end_of(Words& words, std::string_view statement) {
  if (words.done()) return {};
  return error(words.line(), fmt::format("unexpected '{}' after {}", words.peek(), statement));
}

}  // namespace

bool Comparison::holds(std::uint64_t actual) const {
  switch (op) {
    case Op::eq:
      return actual == value;
    case Op::ne:
      return actual != value;
    case Op::lt:
      return actual < value;
    case Op::le:
      return actual <= value;
    case Op::gt:
      return actual > value;
    case Op::ge:
      return actual >= value;
  }
  HAST_UNREACHABLE();
}

std::string Comparison::text() const {
  static constexpr std::string_view names[] = {"=", "!=", "<", "<=", ">", ">="};
  return fmt::format("{} {}", names[static_cast<int>(op)], value);
}

std::string format_duration(Duration duration) {
  auto ns = duration.count();
  if (ns % 1'000'000'000 == 0) return fmt::format("{}s", ns / 1'000'000'000);
  if (ns >= 1'000'000'000) return fmt::format("{:.3f}s", static_cast<double>(ns) / 1e9);
  if (ns % 1'000'000 == 0) return fmt::format("{}ms", ns / 1'000'000);
  return fmt::format("{:.3f}ms", static_cast<double>(ns) / 1e6);
}

Result<Scenario> parse_scenario(std::string_view text, std::string_view file) {
  return Parser(text, file).run();
}

}  // namespace hast::sim
