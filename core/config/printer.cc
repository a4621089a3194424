// The printer: a Config back to hast.conf text (canonical layout, same tree).
//
// Every word printed came from a token (or is a keyword), so it lexes back as the same
// token; addresses keep the text they were written with. Tests and the fuzz target check
// that print(parse(print(c))) == print(c).
#include <fmt/format.h>

#include "core/config/config.h"

namespace hast::config {
namespace {

constexpr std::string_view indent_unit = "    ";

class Printer {
 public:
  std::string take() { return std::move(out_); }

  void settings(const Settings& s, int depth);
  void node(const NodeSection& node, int depth);
  void resource(const ResourceSection& resource);

 private:
  void line(int depth, std::string_view text) {
    HAST_ASSERT(depth >= 0 && depth <= 2);
    for (int i = 0; i < depth; i++)
      out_ += indent_unit;
    out_ += text;
    out_ += '\n';
  }
  template <typename T>
  void optional_line(int depth, std::string_view keyword, const std::optional<T>& value) {
    if (value.has_value()) line(depth, fmt::format("{} {}", keyword, *value));
  }
  void frontend(const FrontendConfig& frontend, int depth);

  std::string out_;
};

void Printer::settings(const Settings& s, int depth) {
  if (s.control) line(depth, fmt::format("control {}", s.control->text));
  optional_line(depth, "pidfile", s.pidfile);
  for (const ConfiguredAddress& address : s.listen)
    line(depth, fmt::format("listen {}", address.text));
  if (s.replication) line(depth, fmt::format("replication {}", replication_name(*s.replication)));
  if (s.checksum) line(depth, fmt::format("checksum {}", checksum_name(*s.checksum)));
  if (s.compression) line(depth, fmt::format("compression {}", compression_name(*s.compression)));
  optional_line(depth, "timeout", s.timeout_seconds);
  optional_line(depth, "exec", s.exec_path);
  if (s.metaflush) line(depth, *s.metaflush ? "metaflush on" : "metaflush off");
  optional_line(depth, "name", s.provider_name);
  optional_line(depth, "local", s.local_path);
  if (s.remote) {
    line(depth, fmt::format("remote {}", s.remote->address ? s.remote->address->text : "none"));
  }
  if (s.source) line(depth, fmt::format("source {}", s.source->text));
  if (s.frontend) frontend(*s.frontend, depth);
  optional_line(depth, "syncrate", s.syncrate_bytes_per_second);
  optional_line(depth, "busypoll", s.busypoll_us);
}

void Printer::frontend(const FrontendConfig& frontend, int depth) {
  std::string text = fmt::format("frontend {}", frontend_name(frontend.kind));
  if (frontend.kind == FrontendKind::nbd && frontend.nbd_address) {
    text += fmt::format(" {}", frontend.nbd_address->text);
  }
  bool linked = frontend.kind == FrontendKind::fuse || frontend.kind == FrontendKind::ublk;
  if (linked && frontend.link) {
    text += fmt::format(" {}", *frontend.link);
  }
  line(depth, text);
}

void Printer::node(const NodeSection& node, int depth) {
  HAST_ASSERT(!node.node.empty());
  line(depth, fmt::format("on {} {{", node.node));
  settings(node.settings, depth + 1);
  line(depth, "}");
}

void Printer::resource(const ResourceSection& resource) {
  HAST_ASSERT(!resource.name.empty());
  line(0, fmt::format("resource {} {{", resource.name));
  settings(resource.settings, 1);
  for (const NodeSection& node : resource.nodes)
    this->node(node, 1);
  line(0, "}");
}

}  // namespace

std::string print(const Config& config) {
  Printer printer;
  printer.settings(config.global, 0);
  for (const NodeSection& node : config.nodes)
    printer.node(node, 0);
  for (const ResourceSection& resource : config.resources)
    printer.resource(resource);
  std::string text = printer.take();
  HAST_ASSERT(text.empty() || text.back() == '\n');
  return text;
}

}  // namespace hast::config
