// hast.conf: the configuration model, the parser and the per-node resolver.
//
// Model (reference/hast-spec.md §2, DESIGN.md §7): parsing and resolving are two steps.
// - parse() turns the text of a hast.conf into a Config, the raw tree of what the file
//   says: the global settings, the global `on <node>` sections, and the resources with
//   their own `on <node>` sections. It depends only on the text, so the same file gives
//   the same tree on every host. Syntax, placement, values, lengths, addresses and
//   duplicate resources are checked here.
// - resolve() takes a Config and the identity of this host and computes the NodeConfig
//   this host runs with: the matching node sections applied, inheritance followed, the
//   defaults filled in, and the per-node checks of §2.5 made (a section for this node,
//   a remote address, a local path, an address to listen on).
//
// Pure computation: no file reading, no host name lookup. The caller (real/ or the
// simulator) passes the text and the identity.
//
// Errors are Errc::invalid_argument with a context that starts "line N: " (1-based; HAST
// printed the line number one too low) and names the problem in HAST's words where HAST
// has words for it. The only error without a line is "No address to listen on.", which
// is Errc::unsupported because hastd exits EX_TEMPFAIL for it, not EX_CONFIG.
//
// Extensions (ours, DESIGN.md §7), recognised only in statement position so that names
// such as `fuse` or `frontend` stay usable as resource and node names:
//   frontend nbd [ADDRESS] | fuse [LINK] | ublk [LINK] | none   resource and resource-node
//   syncrate NUM[K|M|G] | none                            global and resource
//   busypoll MICROSECONDS | none                          global and resource
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/io/network.h"
#include "core/proto/transform.h"
#include "core/result.h"

namespace hast::config {

// Defaults and limits (reference/hast-spec.md §1.6, §2.3, §2.5).
inline constexpr std::uint16_t default_port = 8457;
inline constexpr std::uint16_t nbd_default_port = 10809;  // IANA port of NBD
inline constexpr std::string_view default_control = "/var/run/hastctl";
inline constexpr std::string_view default_pidfile = "/var/run/hastd.pid";
inline constexpr std::string_view default_listen_ipv4 = "tcp4://0.0.0.0:8457";
inline constexpr std::string_view default_listen_ipv6 = "tcp6://[::]:8457";
inline constexpr int default_timeout_seconds = 20;
// busypoll: the longest a resource's thread spins for a completion before it blocks
// (real/ring.h); adaptive below it. 0: never spin.
inline constexpr std::uint32_t default_busypoll_us = 0;
inline constexpr std::uint32_t busypoll_us_max = 10000;
// HAST's buffers hold this many bytes including the terminating NUL; longer is an error.
inline constexpr std::size_t address_size_max = 1024;  // HAST_ADDRSIZE
inline constexpr std::size_t path_size_max = 1024;     // PATH_MAX
inline constexpr std::size_t name_size_max = 256;      // NAME_MAX + 1

enum class ReplicationMode : std::uint8_t { fullsync, memsync, async };
// The wire's payload transforms (core/proto/transform.h), named in hast.conf.
using Checksum = proto::Checksum;
using Compression = proto::Compression;
// How the primary exposes the replicated device (reference/frontends.md).
enum class FrontendKind : std::uint8_t { nbd, fuse, ublk, none };

// The names HAST prints in status output and accepts in hast.conf.
std::string_view replication_name(ReplicationMode mode);
using proto::checksum_name;
using proto::compression_name;
std::string_view frontend_name(FrontendKind kind);

inline constexpr ReplicationMode default_replication = ReplicationMode::memsync;
inline constexpr Checksum default_checksum = Checksum::none;
inline constexpr Compression default_compression = Compression::hole;
// The FUSE frontend (DESIGN.md §7): a loop device linked at /dev/hast/<name>.
inline constexpr FrontendKind default_frontend = FrontendKind::fuse;

// An address as written in hast.conf, and parsed. hastctl prints `text` (HAST shows the
// configured string, e.g. "tcp://10.0.0.2" without the default port); connections use
// `address`.
struct ConfiguredAddress {
  std::string text;
  Address address;

  friend bool operator==(const ConfiguredAddress&, const ConfiguredAddress&) = default;
};

// `remote ADDRESS` or `remote none` (no secondary: the resource runs alone).
struct RemoteSetting {
  std::optional<ConfiguredAddress> address;  // nullopt: `remote none`

  friend bool operator==(const RemoteSetting&, const RemoteSetting&) = default;
};

// `frontend ...`. In a Config the optional parts are what the file says; in a resolved
// ResourceConfig the defaults are filled in: nbd always has an address, fuse and ublk a
// link.
struct FrontendConfig {
  FrontendKind kind = default_frontend;
  std::optional<ConfiguredAddress> nbd_address;  // nbd only
  std::optional<std::string> link;               // fuse and ublk: an absolute path

  friend bool operator==(const FrontendConfig&, const FrontendConfig&) = default;
};

// Everything a section can set; unset is nullopt (or an empty listen list). One shape
// for all four kinds of section; the parser only sets the fields §2.2 allows where the
// section is (global: control..metaflush, syncrate and busypoll; global node: control,
// pidfile, listen; resource: replication..metaflush, name, local, frontend, syncrate,
// busypoll; resource
// node: name, local, remote, source, metaflush, frontend). When a setting is repeated in
// one section the last one wins, as in HAST, except listen, which accumulates.
struct Settings {
  std::optional<ConfiguredAddress> control;
  std::optional<std::string> pidfile;
  std::vector<ConfiguredAddress> listen;
  std::optional<ReplicationMode> replication;
  std::optional<Checksum> checksum;
  std::optional<Compression> compression;
  std::optional<int> timeout_seconds;  // > 0
  std::optional<std::string> exec_path;
  std::optional<bool> metaflush;
  std::optional<std::string> provider_name;  // `name`
  std::optional<std::string> local_path;     // `local`
  std::optional<RemoteSetting> remote;
  std::optional<ConfiguredAddress> source;
  std::optional<FrontendConfig> frontend;
  std::optional<std::uint64_t> syncrate_bytes_per_second;  // 0: unlimited
  std::optional<std::uint32_t> busypoll_us;                // 0: none

  friend bool operator==(const Settings&, const Settings&) = default;
};

// `on <node> { ... }`, at global level or inside a resource.
struct NodeSection {
  std::string node;
  int line = 0;  // of the `on` keyword
  Settings settings;
};

// `resource <name> { ... }`.
struct ResourceSection {
  std::string name;
  int line = 0;  // of the `resource` keyword
  Settings settings;
  std::vector<NodeSection> nodes;
};

// The raw tree of one hast.conf, in file order. Resource names are unique.
struct Config {
  Settings global;
  std::vector<NodeSection> nodes;
  std::vector<ResourceSection> resources;
};

// Parses the text of a hast.conf. Never asserts on its input: any byte string gives a
// Config or an Errc::invalid_argument error whose context starts "line N: " with N
// between 1 and the number of lines of `text`.
Result<Config> parse(std::string_view text);

// Prints `config` as hast.conf text that parses back to the same tree (line numbers
// aside). Canonical layout: one statement per line, four-space indentation.
std::string print(const Config& config);

// Who this host is, for matching `on <node>` sections (reference/hast-spec.md §2.4).
// A section applies when its name equals, in this order: the host name (exact), the
// host name up to its first dot (only when it has one), the machine id (HAST's
// kern.hostuuid; real/ reads /etc/machine-id) compared case-insensitively, or
// "hostid<N>" with N the host id in decimal. `node_override` (hastd --node) replaces
// the host name in the first two; the machine id and host id still match.
struct NodeIdentity {
  std::string hostname;
  std::string machine_id;  // empty: unknown, matches nothing
  std::uint64_t hostid = 0;
  std::optional<std::string> node_override;
};

// The names a section may use to mean this host, in the order HAST lists them in
// "acceptable node names": short name (when distinct), host name, machine id, hostid<N>.
std::vector<std::string> acceptable_node_names(const NodeIdentity& identity);

// True when a section named `node` applies to this host.
bool node_matches(std::string_view node, const NodeIdentity& identity);

// Which address families the host supports; the default listen addresses are added
// only for supported families (HAST checks the kernel).
struct AddressFamilies {
  bool ipv4 = true;
  bool ipv6 = true;
};

// One resource as this host runs it.
struct ResourceConfig {
  std::string name;
  int line = 0;  // of its `resource` statement, for messages
  std::string provider_name;
  std::string local_path;
  std::optional<ConfiguredAddress> remote;  // nullopt: `remote none`
  std::optional<ConfiguredAddress> source;  // nullopt: no bind before connect
  ReplicationMode replication = default_replication;
  Checksum checksum = default_checksum;
  Compression compression = default_compression;
  int timeout_seconds = default_timeout_seconds;
  std::string exec_path;  // empty: no hooks
  bool metaflush = true;
  FrontendConfig frontend;
  std::uint64_t syncrate_bytes_per_second = 0;  // 0: unlimited
  std::uint32_t busypoll_us = default_busypoll_us;

  // The remote as hastctl prints it: the configured text, or "none".
  std::string remote_text() const { return remote ? remote->text : std::string("none"); }

  friend bool operator==(const ResourceConfig&, const ResourceConfig&) = default;
};

// The whole configuration as this host runs it.
struct NodeConfig {
  ConfiguredAddress control;
  std::string pidfile;
  std::vector<ConfiguredAddress> listen;  // never empty
  std::vector<ResourceConfig> resources;  // file order

  // The resource called `name`, or nullptr.
  const ResourceConfig* find(std::string_view name) const;
};

// Resolves `config` for the host `identity` (see the top of this file). A Config built in
// code may leave the lines 0; its messages then have no "line N: " prefix. Errors:
// Errc::invalid_argument "line N: No resource X configuration for this node (acceptable
// node names: ...).", "line N: Remote address not configured for resource X.", "line N:
// Path to local component not configured for resource X."; Errc::unsupported "No
// address to listen on.".
Result<NodeConfig> resolve(const Config& config, const NodeIdentity& identity,
                           AddressFamilies families = {});

}  // namespace hast::config
