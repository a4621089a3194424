// hast.conf: resolution for a host, defaults, inheritance, node matching, extensions.
//
// The error messages and syntax rules are in config_errors_test.cc; the properties over
// random input and the printer in config_property_test.cc.
#include <catch2/catch.hpp>

#include "core/config/config.h"
#include "tests/unit/config_support.h"

using hast::Address;
using hast::test::error_text;
using hast::test::host;
using hast::test::resolve_text;
namespace config = hast::config;

namespace {

// The walk-through's file (reference/walkthrough.md), byte for byte.
constexpr std::string_view walkthrough = R"(listen tcp://0.0.0.0
resource shared {
local /dev/ada0p4
on fbsd_h1 {
remote tcp://10.0.0.231
}
on fbsd_h2 {
remote tcp://10.0.0.233
}
}
)";

constexpr std::string_view two_nodes = R"(# Two hastd on one machine (DESIGN.md §7).
on node1 {
    control uds:///tmp/hast/node1.ctl
    pidfile /tmp/hast/node1.pid
    listen tcp://127.0.0.1:7771
}
on node2 {
    control uds:///tmp/hast/node2.ctl
    pidfile /tmp/hast/node2.pid
    listen tcp6://[::1]:7772
}
resource shared {
    on node1 {
        local /tmp/hast/node1.img
        remote tcp://127.0.0.2:7772
        source tcp://127.0.0.1
        frontend nbd unix:///tmp/hast/node1.sock
    }
    on node2 {
        local /tmp/hast/node2.img
        remote tcp://[::1]:7771
        source tcp6://[::1]
        frontend nbd unix:///tmp/hast/node2.sock
    }
}
)";

Address tcp(std::string host_name, std::uint16_t port, Address::Kind kind = Address::Kind::tcp) {
  Address address;
  address.kind = kind;
  address.host = std::move(host_name);
  address.port = port;
  return address;
}

Address unix_socket(std::string path) {
  Address address;
  address.kind = Address::Kind::unix_socket;
  address.path = std::move(path);
  return address;
}

// A minimal resource block `r` for fbsd_h1 wrapped around `inside` (resource level) and
// `node` (inside `on fbsd_h1`).
std::string resource_r(std::string_view inside, std::string_view node = "") {
  return fmt::format(
      "resource r {{\n local /dev/sdb\n {}\n on fbsd_h1 {{\n remote 10.0.0.2\n"
      " {}\n }}\n}}\n",
      inside, node);
}

config::ResourceConfig resolve_r(std::string_view text, std::string hostname = "fbsd_h1") {
  auto node = resolve_text(text, host(std::move(hostname)));
  REQUIRE(node.resources.size() == 1);
  return node.resources.front();
}

}  // namespace

TEST_CASE("Config: the walk-through's file resolves on fbsd_h1 and fbsd_h2", "[unit][config]") {
  for (auto [hostname, remote] : {std::pair{"fbsd_h1", "10.0.0.231"}, {"fbsd_h2", "10.0.0.233"}}) {
    auto node = resolve_text(walkthrough, host(hostname));
    REQUIRE(node.resources.size() == 1);
    const auto& shared = node.resources[0];
    CHECK(shared.name == "shared");
    CHECK(shared.line == 2);
    CHECK(shared.provider_name == "shared");
    CHECK(shared.local_path == "/dev/ada0p4");
    REQUIRE(shared.remote.has_value());
    CHECK(shared.remote->text == fmt::format("tcp://{}", remote));
    CHECK(shared.remote->address == tcp(remote, 8457));
    CHECK(shared.remote_text() == fmt::format("tcp://{}", remote));
    CHECK(!shared.source.has_value());
    // A listen line replaces the defaults: only 0.0.0.0:8457.
    REQUIRE(node.listen.size() == 1);
    CHECK(node.listen[0].text == "tcp://0.0.0.0");
    CHECK(node.listen[0].address == tcp("0.0.0.0", 8457));
    CHECK(node.find("shared") == &node.resources[0]);
    CHECK(node.find("other") == nullptr);
  }
  CHECK(error_text(walkthrough, host("fbsd_h3")).find("No resource shared") != std::string::npos);
}

TEST_CASE("Config: two nodes on one machine, chosen with --node", "[unit][config]") {
  auto identity = host("buildbox");
  identity.node_override = "node1";
  auto one = resolve_text(two_nodes, identity);
  identity.node_override = "node2";
  auto two = resolve_text(two_nodes, identity);

  CHECK(one.control.address == unix_socket("/tmp/hast/node1.ctl"));
  CHECK(two.control.address == unix_socket("/tmp/hast/node2.ctl"));
  CHECK(one.pidfile == "/tmp/hast/node1.pid");
  CHECK(two.pidfile == "/tmp/hast/node2.pid");
  // The default NBD socket sits next to the node's control socket.
  for (const auto& resource : one.resources) {
    CHECK(resource.frontend.nbd_address->address.path.starts_with("/tmp/hast/"));
  }
  // A node section's listen counts: no default addresses are added.
  REQUIRE(one.listen.size() == 1);
  REQUIRE(two.listen.size() == 1);
  CHECK(one.listen[0].address == tcp("127.0.0.1", 7771));
  CHECK(two.listen[0].address == tcp("::1", 7772, Address::Kind::tcp6));

  const auto& r1 = one.resources.at(0);
  const auto& r2 = two.resources.at(0);
  CHECK(r1.local_path == "/tmp/hast/node1.img");
  CHECK(r2.local_path == "/tmp/hast/node2.img");
  CHECK(r1.remote->address == tcp("127.0.0.2", 7772));
  CHECK(r2.remote->address == tcp("::1", 7771));
  // The source port is left to the kernel.
  CHECK(r1.source->address == tcp("127.0.0.1", 0));
  CHECK(r2.source->address == tcp("::1", 0, Address::Kind::tcp6));
  CHECK(r1.frontend.kind == config::FrontendKind::nbd);
  CHECK(r1.frontend.nbd_address->address == unix_socket("/tmp/hast/node1.sock"));
  CHECK(r2.frontend.nbd_address->address == unix_socket("/tmp/hast/node2.sock"));

  // Without --node neither section matches the machine's own name.
  CHECK(error_text(two_nodes, host("buildbox")) ==
        "line 12: No resource shared configuration for this node (acceptable node names: "
        "buildbox, 4C4C4544-0042-3510-8052-B4C04F4B4E31, hostid3735928559).");
}

TEST_CASE("Config: every default", "[unit][config]") {
  auto node =
      resolve_text("resource r { local /dev/sdb on fbsd_h1 { remote 10.0.0.2 } }", host("fbsd_h1"));
  CHECK(node.control.text == "/var/run/hastctl");
  CHECK(node.control.address == unix_socket("/var/run/hastctl"));
  CHECK(node.pidfile == "/var/run/hastd.pid");
  REQUIRE(node.listen.size() == 2);
  CHECK(node.listen[0].text == "tcp4://0.0.0.0:8457");
  CHECK(node.listen[0].address == tcp("0.0.0.0", 8457, Address::Kind::tcp4));
  CHECK(node.listen[1].text == "tcp6://[::]:8457");
  CHECK(node.listen[1].address == tcp("::", 8457, Address::Kind::tcp6));
  const auto& r = node.resources.at(0);
  CHECK(r.provider_name == "r");
  CHECK(r.replication == config::ReplicationMode::memsync);
  CHECK(r.checksum == config::Checksum::none);
  CHECK(r.compression == config::Compression::hole);
  CHECK(r.timeout_seconds == 20);
  CHECK(r.exec_path.empty());
  CHECK(r.metaflush);
  CHECK(!r.source.has_value());
  CHECK(r.syncrate_bytes_per_second == 0);
  CHECK(r.busypoll_us == config::default_busypoll_us);
  CHECK(r.frontend.kind == config::FrontendKind::fuse);
  CHECK(r.frontend.link == "/dev/hast/r");
  CHECK(!r.frontend.nbd_address.has_value());
}

TEST_CASE("Config: default listen addresses follow the address families", "[unit][config]") {
  constexpr std::string_view text = "resource r { local /x on fbsd_h1 { remote none } }";
  auto v4 = resolve_text(text, host("fbsd_h1"), {.ipv4 = true, .ipv6 = false});
  REQUIRE(v4.listen.size() == 1);
  CHECK(v4.listen[0].text == "tcp4://0.0.0.0:8457");
  auto v6 = resolve_text(text, host("fbsd_h1"), {.ipv4 = false, .ipv6 = true});
  REQUIRE(v6.listen.size() == 1);
  CHECK(v6.listen[0].text == "tcp6://[::]:8457");

  auto parsed = config::parse(text);
  REQUIRE(parsed);
  auto none = config::resolve(*parsed, host("fbsd_h1"), {.ipv4 = false, .ipv6 = false});
  REQUIRE(!none);
  CHECK(none.error().code() == hast::Errc::unsupported);
  CHECK(none.error().context() == "No address to listen on.");
  // A configured address needs no family check here (the listener reports its failure).
  auto configured = resolve_text(fmt::format("listen 10.0.0.1\n{}", text), host("fbsd_h1"),
                                 {.ipv4 = false, .ipv6 = false});
  CHECK(configured.listen.size() == 1);
}

TEST_CASE("Config: control, pidfile and listen inheritance", "[unit][config]") {
  // The node section wins wherever it stands; another node's section is ignored.
  constexpr std::string_view text = R"(on fbsd_h1 { control /run/h1.ctl listen 10.0.0.1:1 }
on fbsd_h2 { control /run/h2.ctl pidfile /run/h2.pid listen 10.0.0.2:2 }
control /run/global.ctl
pidfile /run/global.pid
listen 10.0.0.9:9
on fbsd_h1 { listen 10.0.0.1:3 }
)";
  auto h1 = resolve_text(text, host("fbsd_h1"));
  CHECK(h1.control.text == "/run/h1.ctl");
  CHECK(h1.pidfile == "/run/global.pid");
  // listen: every global line, then every matching node section's, in file order.
  REQUIRE(h1.listen.size() == 3);
  CHECK(h1.listen[0].text == "10.0.0.9:9");
  CHECK(h1.listen[1].text == "10.0.0.1:1");
  CHECK(h1.listen[2].text == "10.0.0.1:3");
  auto h2 = resolve_text(text, host("fbsd_h2"));
  CHECK(h2.control.text == "/run/h2.ctl");
  CHECK(h2.pidfile == "/run/h2.pid");
  REQUIRE(h2.listen.size() == 2);
  auto h3 = resolve_text(text, host("fbsd_h3"));
  CHECK(h3.control.text == "/run/global.ctl");
  REQUIRE(h3.listen.size() == 1);
  // A repeated setting: the last one wins (HAST overwrote).
  auto twice = resolve_text("control /a\ncontrol /b\npidfile /c\npidfile /d\n", host("x"));
  CHECK(twice.control.text == "/b");
  CHECK(twice.pidfile == "/d");
  // Two matching node sections (host name and hostid): the later one wins.
  auto both = resolve_text("on hostid3735928559 { control /late }\n", host("x"));
  CHECK(both.control.text == "/late");
  auto order = resolve_text(
      "on x { control /early }\non hostid3735928559 { control /late }\n"
      "on x { pidfile /p }\n",
      host("x"));
  CHECK(order.control.text == "/late");
  CHECK(order.pidfile == "/p");
}

TEST_CASE("Config: resource settings inherit from the global level", "[unit][config]") {
  constexpr std::string_view globals =
      "replication fullsync\nchecksum crc32\ncompression lzf\ntimeout 7\nexec /g\n"
      "metaflush off\nsyncrate 1K\nbusypoll 150\n";
  auto inherited = resolve_r(fmt::format("{}{}", globals, resource_r("")));
  CHECK(inherited.replication == config::ReplicationMode::fullsync);
  CHECK(inherited.checksum == config::Checksum::crc32);
  CHECK(inherited.compression == config::Compression::lzf);
  CHECK(inherited.timeout_seconds == 7);
  CHECK(inherited.exec_path == "/g");
  CHECK(!inherited.metaflush);
  CHECK(inherited.syncrate_bytes_per_second == 1024);
  CHECK(inherited.busypoll_us == 150);

  auto own = resolve_r(
      fmt::format("{}{}", globals,
                  resource_r("replication async checksum sha256 compression none timeout 9 exec /r "
                             "metaflush on syncrate 2M busypoll none")));
  CHECK(own.replication == config::ReplicationMode::async);
  CHECK(own.checksum == config::Checksum::sha256);
  CHECK(own.compression == config::Compression::none);
  CHECK(own.timeout_seconds == 9);
  CHECK(own.exec_path == "/r");
  CHECK(own.metaflush);
  CHECK(own.syncrate_bytes_per_second == 2 * 1024 * 1024);
  CHECK(own.busypoll_us == 0);

  // Global settings after the resource still apply (HAST fills them in at the end).
  auto late = resolve_r(fmt::format("{}{}", resource_r(""), globals));
  CHECK(late.replication == config::ReplicationMode::fullsync);
  CHECK(late.timeout_seconds == 7);
}

TEST_CASE("Config: node-level settings of a resource", "[unit][config]") {
  // metaflush: resource node -> resource -> global.
  CHECK(!resolve_r("metaflush on\n" + resource_r("metaflush on", "metaflush off")).metaflush);
  CHECK(!resolve_r("metaflush on\n" + resource_r("metaflush off")).metaflush);
  CHECK(resolve_r("metaflush off\n" + resource_r("", "metaflush on")).metaflush);
  // name: resource node -> resource -> resource name.
  CHECK(resolve_r(resource_r("name pr", "name pn")).provider_name == "pn");
  CHECK(resolve_r(resource_r("name pr")).provider_name == "pr");
  // local: resource node -> resource.
  CHECK(resolve_r(resource_r("", "local /dev/node")).local_path == "/dev/node");
  CHECK(resolve_r(resource_r("")).local_path == "/dev/sdb");
  // frontend: resource node -> resource -> default.
  CHECK(resolve_r(resource_r("frontend ublk", "frontend none")).frontend.kind ==
        config::FrontendKind::none);
  CHECK(resolve_r(resource_r("frontend ublk")).frontend.kind == config::FrontendKind::ublk);
  // ublk takes a link like fuse, by default /dev/hast/<resource>.
  CHECK(resolve_r(resource_r("frontend ublk")).frontend.link == "/dev/hast/r");
  CHECK(resolve_r(resource_r("frontend ublk /dev/u")).frontend.link == "/dev/u");
  // remote none and source.
  auto alone = resolve_r(resource_r("", "remote none"));
  CHECK(!alone.remote.has_value());
  CHECK(alone.remote_text() == "none");
  auto sourced = resolve_r(resource_r("", "source 10.0.0.1"));
  CHECK(sourced.source->address == tcp("10.0.0.1", 0));
  // Another node's section contributes nothing.
  constexpr std::string_view two = R"(resource r {
    local /dev/sdb
    on fbsd_h1 { remote 10.0.0.2 }
    on fbsd_h2 { remote 10.0.0.1 local /dev/other name other metaflush off frontend ublk }
})";
  auto h1 = resolve_r(two);
  CHECK(h1.local_path == "/dev/sdb");
  CHECK(h1.provider_name == "r");
  CHECK(h1.metaflush);
  CHECK(h1.frontend.kind == config::FrontendKind::fuse);
  auto h2 = resolve_r(two, "fbsd_h2");
  CHECK(h2.local_path == "/dev/other");
  CHECK(h2.provider_name == "other");
  CHECK(!h2.metaflush);
  CHECK(h2.remote->text == "10.0.0.1");
  // Two matching sections: the later one wins, field by field.
  auto merged = resolve_r(R"(resource r {
    on fbsd_h1 { remote 10.0.0.2 local /a }
    on hostid3735928559 { remote 10.0.0.3 }
})");
  CHECK(merged.remote->text == "10.0.0.3");
  CHECK(merged.local_path == "/a");
}

TEST_CASE("Config: node names match host name, short name, machine id, hostid", "[unit][config]") {
  auto full = host("fbsd_h1.example.org");
  CHECK(config::node_matches("fbsd_h1.example.org", full));
  CHECK(config::node_matches("fbsd_h1", full));
  CHECK(!config::node_matches("fbsd_h1.example", full));
  CHECK(!config::node_matches("FBSD_H1", full));  // host names are case-sensitive
  CHECK(config::node_matches("4c4c4544-0042-3510-8052-b4c04f4b4e31", full));
  CHECK(config::node_matches("4C4C4544-0042-3510-8052-B4C04F4B4E31", full));
  CHECK(config::node_matches("hostid3735928559", full));
  CHECK(!config::node_matches("hostid3735928558", full));
  CHECK(!config::node_matches("", full));
  CHECK(config::acceptable_node_names(full) ==
        std::vector<std::string>{"fbsd_h1", "fbsd_h1.example.org",
                                 "4C4C4544-0042-3510-8052-B4C04F4B4E31", "hostid3735928559"});
  // No dot: no short name.
  CHECK(config::acceptable_node_names(host("fbsd_h1")).size() == 3);
  // --node replaces the host name; machine id and hostid still match.
  auto overridden = full;
  overridden.node_override = "node2";
  CHECK(config::node_matches("node2", overridden));
  CHECK(!config::node_matches("fbsd_h1", overridden));
  CHECK(!config::node_matches("fbsd_h1.example.org", overridden));
  CHECK(config::node_matches("hostid3735928559", overridden));
  CHECK(config::acceptable_node_names(overridden) ==
        std::vector<std::string>{"node2", "4C4C4544-0042-3510-8052-B4C04F4B4E31",
                                 "hostid3735928559"});
  // An unknown machine id matches nothing and is not listed.
  auto unknown = full;
  unknown.machine_id.clear();
  CHECK(config::acceptable_node_names(unknown).size() == 3);
  // Through a whole file: the machine id in any case selects the section.
  auto node = resolve_text(
      "resource r { local /x on 4c4c4544-0042-3510-8052-b4c04f4b4e31 "
      "{ remote 10.0.0.5 } }",
      host("anything"));
  CHECK(node.resources.at(0).remote->text == "10.0.0.5");
}

TEST_CASE("Config: frontend and syncrate are contextual keywords", "[unit][config]") {
  // As names they are ordinary strings.
  auto names = resolve_text(R"(resource fuse { local /a on fbsd_h1 { remote none } }
resource frontend { local /b on syncrate { remote none } on fbsd_h1 { remote none } }
resource syncrate { local /c on nbd { remote none } on ublk { } on fbsd_h1 { remote none } }
resource nbd { local /d on fbsd_h1 { remote none frontend fuse } }
)",
                            host("fbsd_h1"));
  REQUIRE(names.resources.size() == 4);
  CHECK(names.resources[0].name == "fuse");
  CHECK(names.resources[1].name == "frontend");
  CHECK(names.resources[2].name == "syncrate");
  CHECK(names.resources[3].frontend.link == "/dev/hast/nbd");

  auto nbd_tcp = resolve_r(resource_r("frontend nbd tcp://127.0.0.1"));
  CHECK(nbd_tcp.frontend.nbd_address->address == tcp("127.0.0.1", 10809));
  auto nbd_unix = resolve_r(resource_r("frontend nbd unix:///run/r.sock"));
  CHECK(nbd_unix.frontend.nbd_address->address == unix_socket("/run/r.sock"));
  auto nbd_default = resolve_r(resource_r("frontend nbd syncrate 5"));
  CHECK(nbd_default.frontend.nbd_address->text == "/var/run/r.nbd");
  CHECK(nbd_default.syncrate_bytes_per_second == 5);
  auto fuse = resolve_r(resource_r("frontend fuse /dev/hast/link"));
  CHECK(fuse.frontend.kind == config::FrontendKind::fuse);
  CHECK(fuse.frontend.link == "/dev/hast/link");
  CHECK(!fuse.frontend.nbd_address.has_value());
  CHECK(resolve_r(resource_r("frontend fuse")).frontend.link == "/dev/hast/r");
  CHECK(resolve_r(resource_r("", "frontend fuse")).frontend.link == "/dev/hast/r");

  // syncrate: bytes per second, binary K/M/G in either case, none or 0 for unlimited.
  for (auto [text, rate] : {std::pair<std::string_view, std::uint64_t>{"100", 100},
                            {"0", 0},
                            {"none", 0},
                            {"4k", 4096},
                            {"4K", 4096},
                            {"3m", 3 << 20},
                            {"1G", std::uint64_t{1} << 30},
                            {"17179869183G", std::uint64_t{17179869183} << 30},
                            {"18446744073709551615", UINT64_MAX}}) {
    INFO(text);
    CHECK(resolve_r(resource_r(fmt::format("syncrate {}", text))).syncrate_bytes_per_second ==
          rate);
  }
}

TEST_CASE("Config: enum names are HAST's", "[unit][config]") {
  CHECK(config::replication_name(config::ReplicationMode::fullsync) == "fullsync");
  CHECK(config::replication_name(config::ReplicationMode::memsync) == "memsync");
  CHECK(config::replication_name(config::ReplicationMode::async) == "async");
  CHECK(config::checksum_name(config::Checksum::none) == "none");
  CHECK(config::checksum_name(config::Checksum::crc32) == "crc32");
  CHECK(config::checksum_name(config::Checksum::sha256) == "sha256");
  CHECK(config::compression_name(config::Compression::none) == "none");
  CHECK(config::compression_name(config::Compression::hole) == "hole");
  CHECK(config::compression_name(config::Compression::lzf) == "lzf");
  CHECK(config::frontend_name(config::FrontendKind::nbd) == "nbd");
  CHECK(config::frontend_name(config::FrontendKind::fuse) == "fuse");
  CHECK(config::frontend_name(config::FrontendKind::ublk) == "ublk");
  CHECK(config::frontend_name(config::FrontendKind::none) == "none");
}

TEST_CASE("Config: a tree built in code resolves like a parsed one", "[unit][config]") {
  config::Config built;
  config::ResourceSection resource;
  resource.name = "r";
  resource.settings.local_path = "/dev/sdb";
  built.resources.push_back(resource);
  // Without lines the messages stand alone.
  auto missing = config::resolve(built, host("fbsd_h1"));
  REQUIRE(!missing);
  CHECK(missing.error().context().rfind("No resource r configuration for this node", 0) == 0);
  config::NodeSection node;
  node.node = "fbsd_h1";
  node.settings.remote = config::RemoteSetting{};
  built.resources[0].nodes.push_back(node);
  auto resolved = config::resolve(built, host("fbsd_h1"));
  REQUIRE(resolved);
  CHECK(resolved->resources.at(0).local_path == "/dev/sdb");
  CHECK(resolved->resources.at(0).line == 0);
  // And it prints as text that parses to the same settings.
  auto reparsed = config::parse(config::print(built));
  REQUIRE(reparsed);
  CHECK(reparsed->resources.at(0).settings == built.resources[0].settings);
  CHECK(reparsed->resources.at(0).nodes.at(0).settings == node.settings);
}
