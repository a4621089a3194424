// NodeReuse: the nodes of a std::map or std::set whose entries come and go once per request
// (requests in flight by id, timers, replies awaited), kept after an erase for the next
// insert, so steady traffic allocates no node.
//
// Model: insert() and erase() stand in for the container's own; erase() moves the node out
// (C++17 node handles), resets a map entry's value to a default one at once (whatever it
// held, a shared_ptr for instance, goes then, as with a plain erase) and keeps the node
// when fewer than spare_max are kept. Order and contents of the container are exactly
// those of plain inserts and erases: only where the memory comes from changes. Not
// thread-safe, like the containers it serves.
#pragma once

#include <cstddef>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/assert.h"

namespace hast::fiber {

template <typename Container, std::size_t spare_max = 256>
class NodeReuse {
 public:
  using node_type = typename Container::node_type;
  using iterator = typename Container::iterator;
  using key_type = typename Container::key_type;

  // Inserts `key` (a set) or `key` -> `value` (a map); false when the key was present
  // (nothing changes then).
  template <typename... Value>
  bool insert(Container& container, const key_type& key, Value&&... value) {
    static_assert(sizeof...(Value) <= 1);
    if (spare_.empty()) {
      if constexpr (sizeof...(Value) == 0) {
        return container.insert(key).second;
      } else {
        return container.emplace(key, std::forward<Value>(value)...).second;
      }
    }
    node_type node = std::move(spare_.back());
    spare_.pop_back();
    HAST_ASSERT(!node.empty());
    if constexpr (sizeof...(Value) == 0) {
      node.value() = key;
    } else {
      node.key() = key;
      ((node.mapped() = std::forward<Value>(value)), ...);
    }
    auto inserted = container.insert(std::move(node));
    if (!inserted.inserted) keep(std::move(inserted.node));
    return inserted.inserted;
  }

  // Erases the entry at `at` (a valid, dereferenceable iterator of `container`).
  void erase(Container& container, iterator at) { keep(container.extract(at)); }

  // Erases `key`; returns how many entries went (0 or 1).
  std::size_t erase(Container& container, const key_type& key) {
    auto found = container.find(key);
    if (found == container.end()) return 0;
    erase(container, found);
    return 1;
  }

  std::size_t spare() const { return spare_.size(); }

 private:
  void keep(node_type node) {
    HAST_ASSERT(!node.empty());
    if constexpr (requires { node.mapped(); }) {
      using Mapped = std::remove_reference_t<decltype(node.mapped())>;
      node.mapped() = Mapped{};  // what the entry held goes now
    }
    if (spare_.size() < spare_max) spare_.push_back(std::move(node));
  }

  std::vector<node_type> spare_;
};

}  // namespace hast::fiber
