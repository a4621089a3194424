// hastctl's command line (reference/hast-spec.md §3.1, §3.7): the subcommand first, then
// options, then names; usage errors give nullopt (exit 64); -e/-k/-m take expand_number
// values.
#include <catch2/catch.hpp>

#include <initializer_list>
#include <string>
#include <vector>

#include "real/hastctl.h"

namespace hast::real {
namespace {

std::optional<HastctlOptions> parse(std::initializer_list<const char*> args) {
  std::vector<std::string> storage{"hastctl"};
  for (const char* arg : args)
    storage.emplace_back(arg);
  std::vector<char*> argv;
  for (std::string& arg : storage)
    argv.push_back(arg.data());
  return parse_hastctl_args(static_cast<int>(argv.size()), argv.data());
}

TEST_CASE("hastctl args: subcommands, options and names", "[real][hastctl]") {
  auto status = parse({"status", "-c", "/etc/x.conf", "--node", "hasta", "--json", "shared"});
  REQUIRE(status);
  CHECK(status->command == "status");
  CHECK(status->config_path == "/etc/x.conf");
  CHECK(status->node == "hasta");
  CHECK(status->json);
  CHECK(status->names == std::vector<std::string>{"shared"});

  auto role = parse({"role", "-d", "--force", "primary", "all"});
  REQUIRE(role);
  CHECK(role->role == "primary");
  CHECK(role->force);
  CHECK(role->debug == 1);
  CHECK(role->names == std::vector<std::string>{"all"});

  auto create = parse({"create", "-e", "4M", "-k", "128", "-m", "1g", "shared"});
  REQUIRE(create);
  CHECK(create->extent_size == 4u << 20);
  CHECK(create->keep_dirty == 128u);
  CHECK(create->media_size == 1ull << 30);

  auto list = parse({"list"});
  REQUIRE(list);
  CHECK(list->names.empty());
  CHECK(parse({"stop"}).has_value());
  CHECK(parse({"dump", "all"}).has_value());
}

TEST_CASE("hastctl args: usage errors", "[real][hastctl]") {
  CHECK_FALSE(parse({}));
  CHECK_FALSE(parse({"frobnicate"}));
  CHECK_FALSE(parse({"-c", "x", "status"}));  // the subcommand comes first
  CHECK_FALSE(parse({"role"}));
  CHECK_FALSE(parse({"role", "primary"}));       // no name
  CHECK_FALSE(parse({"role", "Primary", "x"}));  // role words are exact
  CHECK_FALSE(parse({"create"}));                // no name
  CHECK_FALSE(parse({"create", "-e", "12x", "r"}));
  CHECK_FALSE(parse({"create", "-e"}));       // missing value
  CHECK_FALSE(parse({"status", "--force"}));  // --force is role's
  CHECK_FALSE(parse({"dump", "--json"}));     // --json is status's and list's
  CHECK_FALSE(parse({"status", "-Z"}));
  CHECK_FALSE(parse({"stop", "shared"}));
  CHECK_FALSE(parse({"create", "-k", "99999999999999999999", "r"}));
}

}  // namespace
}  // namespace hast::real
