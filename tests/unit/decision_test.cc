// The secondary's decision table over every case, and the counter rules with HAST defect 1
// fixed (a restarted primary cannot hide a split-brain).
#include <catch2/catch.hpp>

#include "core/replication/decision.h"

using hast::replication::Counters;
using hast::replication::decide_sync;
using hast::replication::GenerationTracker;
using hast::replication::HandshakeCase;
using hast::replication::MapToSend;
using hast::replication::PrimaryView;
using hast::replication::SecondaryView;
using hast::replication::SyncSource;

namespace {

struct Row {
  Counters secondary;
  Counters primary;
  HandshakeCase expected;
  SyncSource source;
  MapToSend map;
};

// HAST's own table (secondary.c), secondary fixed at local=3 remote=3, plus the
// mirror-image rows with the secondary's counters varied.
const Row kRows[] = {
    {{3, 3},
     {2, 2},
     HandshakeCase::inconsistent_counters,
     SyncSource::secondary,
     MapToSend::all_ones},
    {{3, 3},
     {2, 3},
     HandshakeCase::inconsistent_counters,
     SyncSource::primary,
     MapToSend::all_ones},
    {{3, 3},
     {2, 4},
     HandshakeCase::inconsistent_counters,
     SyncSource::primary,
     MapToSend::all_ones},
    {{3, 3}, {3, 2}, HandshakeCase::primary_out_of_date, SyncSource::secondary, MapToSend::on_disk},
    {{3, 3}, {3, 3}, HandshakeCase::in_sync, SyncSource::primary, MapToSend::on_disk},
    {{3, 3},
     {3, 4},
     HandshakeCase::inconsistent_counters,
     SyncSource::primary,
     MapToSend::all_ones},
    {{3, 3}, {4, 2}, HandshakeCase::split_brain, SyncSource::undef, MapToSend::none},
    {{3, 3}, {4, 3}, HandshakeCase::secondary_out_of_date, SyncSource::primary, MapToSend::on_disk},
    {{3, 3},
     {4, 4},
     HandshakeCase::inconsistent_counters,
     SyncSource::primary,
     MapToSend::all_ones},
    // Varying the secondary instead: it wrote as primary since the common state (4,3).
    {{4, 3}, {3, 3}, HandshakeCase::primary_out_of_date, SyncSource::secondary, MapToSend::on_disk},
    {{4, 3}, {4, 3}, HandshakeCase::split_brain, SyncSource::undef, MapToSend::none},
    {{0, 0}, {0, 0}, HandshakeCase::in_sync, SyncSource::primary, MapToSend::on_disk},
    {{0, 0}, {1, 0}, HandshakeCase::secondary_out_of_date, SyncSource::primary, MapToSend::on_disk},
};

}  // namespace

TEST_CASE("Decision: every row of the counter table", "[unit][replication]") {
  for (const Row& row : kRows) {
    INFO("secondary " << row.secondary.local << "/" << row.secondary.remote << " primary "
                      << row.primary.local << "/" << row.primary.remote);
    auto decision = decide_sync(SecondaryView{7, row.secondary}, PrimaryView{7, row.primary});
    CHECK(decision.kind == row.expected);
    CHECK(decision.source == row.source);
    CHECK(decision.map == row.map);
    CHECK(!decision.adopt_resuid);
    CHECK(!decision.reply_virgin);
    CHECK(decision.refused() == (row.expected == HandshakeCase::split_brain));
    CHECK(decision.warning.empty() == (row.expected != HandshakeCase::inconsistent_counters));
  }
  auto brain = decide_sync(SecondaryView{7, {3, 3}}, PrimaryView{7, {4, 2}});
  CHECK(brain.refusal == "Split-brain condition!");
}

TEST_CASE("Decision: exhaustive over small counters agrees with the rules", "[unit][replication]") {
  // Every combination of counters in 0..4 lands in exactly the case its inequalities name.
  for (std::uint64_t sl = 0; sl < 5; sl++)
    for (std::uint64_t sr = 0; sr < 5; sr++)
      for (std::uint64_t pl = 0; pl < 5; pl++)
        for (std::uint64_t pr = 0; pr < 5; pr++) {
          auto d = decide_sync(SecondaryView{1, {sl, sr}}, PrimaryView{1, {pl, pr}});
          bool brain = sl > pr && pl > sr;
          CHECK((d.kind == HandshakeCase::split_brain) == brain);
          if (d.kind == HandshakeCase::primary_out_of_date) CHECK(sl > pr);
          if (d.kind == HandshakeCase::secondary_out_of_date) CHECK(sr < pl);
          // Never a regular sync from a node whose pair says it is behind.
          if (d.map == MapToSend::on_disk && d.source == SyncSource::primary) CHECK(sl == pr);
        }
}

TEST_CASE("Decision: first contact, and a disk from another pair", "[unit][replication]") {
  auto virgin = decide_sync(SecondaryView{0, {}}, PrimaryView{42, {0, 0}, true});
  CHECK(virgin.kind == HandshakeCase::first_contact_virgin);
  CHECK(virgin.map == MapToSend::none);
  CHECK(virgin.adopt_resuid);
  CHECK(virgin.reply_virgin);
  CHECK(virgin.source == SyncSource::primary);

  auto full = decide_sync(SecondaryView{0, {}}, PrimaryView{42, {5, 0}, false});
  CHECK(full.kind == HandshakeCase::first_contact_full);
  CHECK(full.map == MapToSend::all_ones);
  CHECK(full.source == SyncSource::primary);

  // A never-paired node that wrote as primary is not fresh: its data exists nowhere else.
  auto unpaired_writer = decide_sync(SecondaryView{0, {1, 0}}, PrimaryView{42, {0, 0}, true});
  CHECK(unpaired_writer.kind == HandshakeCase::first_contact_full);
  CHECK(unpaired_writer.source == SyncSource::secondary);
  CHECK(unpaired_writer.map == MapToSend::all_ones);
  CHECK(unpaired_writer.adopt_resuid);
  auto both_wrote = decide_sync(SecondaryView{0, {1, 0}}, PrimaryView{42, {1, 0}, true});
  CHECK(both_wrote.kind == HandshakeCase::split_brain);

  auto swapped = decide_sync(SecondaryView{41, {3, 3}}, PrimaryView{42, {3, 3}});
  CHECK(swapped.kind == HandshakeCase::resuid_mismatch);
  CHECK(swapped.refusal == "Resource unique ID mismatch (primary=42, secondary=41).");
  CHECK(swapped.source == SyncSource::undef);
}

namespace {

// HAST's rule, for the regression test: raise only while local equals the secondary's
// remote counter as last seen in a handshake (0 in a freshly started worker).
struct HastRule {
  Counters counters;
  std::uint64_t secondary_remote_seen = 0;
  void on_unreplicated_write() {
    if (counters.local == secondary_remote_seen) counters.local++;
  }
};

}  // namespace

TEST_CASE("Decision: a restarted primary cannot hide a split-brain (defect 1)",
          "[unit][replication]") {
  // A and B are in sync at 3/3. A (primary) restarts while B is away and takes writes; the
  // operator promotes B, which takes writes too. When A comes back as secondary the
  // handshake must report split-brain, not "secondary out of date" (which would silently
  // overwrite A's writes from B).
  Counters common{3, 3};

  GenerationTracker a_after_restart(common);  // a fresh worker: no handshake seen
  CHECK(a_after_restart.on_unreplicated_write());
  CHECK(!a_after_restart.on_unreplicated_write());  // once per period
  GenerationTracker b_promoted(common);
  CHECK(b_promoted.on_unreplicated_write());

  auto fixed = decide_sync(SecondaryView{9, a_after_restart.counters()},
                           PrimaryView{9, b_promoted.counters()});
  CHECK(fixed.kind == HandshakeCase::split_brain);

  // The same sequence under HAST's rule hides the split-brain.
  HastRule hast_a{common};
  hast_a.on_unreplicated_write();
  CHECK(hast_a.counters == common);
  auto hidden =
      decide_sync(SecondaryView{9, hast_a.counters}, PrimaryView{9, b_promoted.counters()});
  CHECK(hidden.kind == HandshakeCase::secondary_out_of_date);
}

TEST_CASE("Decision: counters mirror after a completed sync and rise again after",
          "[unit][replication]") {
  GenerationTracker primary(Counters{3, 3});
  CHECK(primary.on_unreplicated_write());
  CHECK(primary.counters() == Counters{4, 3});
  auto decision = decide_sync(SecondaryView{1, {3, 3}}, PrimaryView{1, primary.counters()});
  CHECK(decision.kind == HandshakeCase::secondary_out_of_date);
  CHECK(primary.on_sync_complete(Counters{3, 3}));
  CHECK(primary.counters() == Counters{3, 3});
  CHECK(primary.on_unreplicated_write());  // a new period after the sync
  primary.on_disconnect();
  CHECK(primary.counters() == Counters{4, 3});
  CHECK(!primary.on_virgin_secondary());
  GenerationTracker fresh(Counters{0, 0});
  CHECK(fresh.on_virgin_secondary());
  CHECK(fresh.counters() == Counters{1, 0});
}
