// NodeReuse (core/fiber/node_reuse.h): the container holds exactly what plain inserts and
// erases would leave, a kept node's value is released at the erase, a duplicate insert
// changes nothing, and no more than spare_max nodes are kept. SpareObjects
// (core/fiber/spare_objects.h): objects reused after give_back, reset at once.
#include <map>
#include <memory>
#include <set>

#include <catch2/catch.hpp>

#include "core/fiber/node_reuse.h"
#include "core/fiber/spare_objects.h"

using hast::fiber::NodeReuse;

TEST_CASE("NodeReuse: inserts and erases behave as the container's own", "[unit][fiber]") {
  std::set<int> set;
  NodeReuse<std::set<int>> nodes;
  CHECK(nodes.insert(set, 3));
  CHECK(nodes.insert(set, 1));
  CHECK(nodes.erase(set, 3) == 1);
  CHECK(nodes.erase(set, 3) == 0);
  CHECK(nodes.spare() == 1);
  CHECK(nodes.insert(set, 2));  // in the kept node
  CHECK(nodes.spare() == 0);
  CHECK(set == std::set<int>{1, 2});
  // A key already present: nothing changes, and the spare node taken for it is kept.
  CHECK(nodes.erase(set, 2) == 1);
  CHECK(!nodes.insert(set, 1));
  CHECK(nodes.spare() == 1);
  CHECK(set == std::set<int>{1});
}

TEST_CASE("NodeReuse: an erased map entry releases its value at once", "[unit][fiber]") {
  std::map<int, std::shared_ptr<int>> map;
  NodeReuse<std::map<int, std::shared_ptr<int>>> nodes;
  auto value = std::make_shared<int>(7);
  std::weak_ptr<int> watch = value;
  CHECK(nodes.insert(map, 1, std::move(value)));
  nodes.erase(map, map.find(1));
  CHECK(watch.expired());  // not held by the kept node
  CHECK(nodes.spare() == 1);
  CHECK(nodes.insert(map, 4, std::make_shared<int>(9)));
  REQUIRE(map.count(4) == 1);
  CHECK(*map.at(4) == 9);
  CHECK(map.size() == 1);
}

TEST_CASE("NodeReuse: keeps at most spare_max nodes", "[unit][fiber]") {
  std::set<int> set;
  NodeReuse<std::set<int>, 2> nodes;
  for (int key = 0; key < 5; key++) CHECK(nodes.insert(set, key));
  for (int key = 0; key < 5; key++) CHECK(nodes.erase(set, key) == 1);
  CHECK(nodes.spare() == 2);
  CHECK(set.empty());
}

TEST_CASE("SpareObjects: a given-back object is reset at once and handed out again",
          "[unit][fiber]") {
  hast::fiber::SpareObjects<std::shared_ptr<int>> spare(2);
  std::shared_ptr<int>& first = spare.take();
  std::shared_ptr<int>& second = spare.take();
  CHECK(&first != &second);
  first = std::make_shared<int>(1);
  std::weak_ptr<int> watch = first;
  spare.give_back(first);
  CHECK(watch.expired());  // released at the give-back, not at the next take
  CHECK(first == nullptr);
  CHECK(&spare.take() == &first);  // the same object again; no third one is made
}
