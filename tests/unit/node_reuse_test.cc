// NodeReuse (core/fiber/node_reuse.h): the container holds exactly what plain inserts and
// erases would leave, a kept node's value is released at the erase, a duplicate insert
// changes nothing, and no more than spare_max nodes are kept. SpareObjects
// (core/fiber/spare_objects.h): objects reused after give_back, reset at once, addresses
// stable; a double give_back or a foreign object aborts (in a child process).
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
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

TEST_CASE("SpareObjects: made objects keep their addresses, up to max", "[unit][fiber]") {
  hast::fiber::SpareObjects<std::shared_ptr<int>> spare(3);
  std::shared_ptr<int>* first = &spare.take();
  *first = std::make_shared<int>(1);
  std::shared_ptr<int>* second = &spare.take();
  std::shared_ptr<int>* third = &spare.take();  // made after the first: it did not move
  CHECK(**first == 1);
  spare.give_back(*second);
  spare.give_back(*first);
  CHECK(&spare.take() == first);  // the last given back first
  CHECK(&spare.take() == second);
  spare.give_back(*third);
  CHECK(&spare.take() == third);
}

namespace {

// Runs `misuse` in a child process and tells whether an assertion aborted it.
template <typename Misuse>
bool aborts(Misuse misuse) {
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (null >= 0) ::dup2(null, STDERR_FILENO);  // the assertion's message
    if (null >= 0) ::dup2(null, STDOUT_FILENO);  // Catch's report of the child's abort
    misuse();
    std::_Exit(0);  // not reached while the check holds
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

}  // namespace

TEST_CASE("SpareObjects: a double give_back or a foreign object aborts", "[unit][fiber]") {
  // A second give_back would hand one object to two holders (while another is out, so
  // the pool does not hold more unused objects than it made).
  CHECK(aborts([] {
    hast::fiber::SpareObjects<std::shared_ptr<int>> spare(2);
    std::shared_ptr<int>& object = spare.take();
    [[maybe_unused]] std::shared_ptr<int>& other = spare.take();
    spare.give_back(object);
    spare.give_back(object);
  }));
  CHECK(aborts([] {
    hast::fiber::SpareObjects<std::shared_ptr<int>> spare(2);
    std::shared_ptr<int> foreign;
    [[maybe_unused]] std::shared_ptr<int>& lent = spare.take();
    spare.give_back(foreign);
  }));
  // The pool's own use does not abort (the check above is not vacuous).
  CHECK(!aborts([] {
    hast::fiber::SpareObjects<std::shared_ptr<int>> spare(2);
    spare.give_back(spare.take());
  }));
}
