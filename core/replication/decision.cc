// The handshake decision table and the counter rules (see decision.h).
#include "core/replication/decision.h"

#include <fmt/format.h>

#include "core/assert.h"

namespace hast::replication {
namespace {

SyncDecision first_contact(const PrimaryView& primary) {
  SyncDecision decision{primary.virgin ? HandshakeCase::first_contact_virgin
                                       : HandshakeCase::first_contact_full};
  decision.source = SyncSource::primary;
  decision.map = primary.virgin ? MapToSend::none : MapToSend::all_ones;
  decision.adopt_resuid = true;
  decision.reply_virgin = true;
  return decision;
}

SyncDecision regular(HandshakeCase kind, SyncSource source) {
  SyncDecision decision{kind};
  decision.source = source;
  decision.map = MapToSend::on_disk;
  return decision;
}

}  // namespace

std::string_view sync_source_name(SyncSource source) {
  switch (source) {
    case SyncSource::undef:
      return "undefined";
    case SyncSource::primary:
      return "primary";
    case SyncSource::secondary:
      return "secondary";
  }
  HAST_UNREACHABLE();
}

std::string_view handshake_case_name(HandshakeCase kind) {
  switch (kind) {
    case HandshakeCase::first_contact_virgin:
      return "first contact, primary virgin";
    case HandshakeCase::first_contact_full:
      return "first contact, full sync";
    case HandshakeCase::resuid_mismatch:
      return "resource unique id mismatch";
    case HandshakeCase::primary_out_of_date:
      return "primary out of date";
    case HandshakeCase::in_sync:
      return "in sync";
    case HandshakeCase::secondary_out_of_date:
      return "secondary out of date";
    case HandshakeCase::split_brain:
      return "split-brain";
    case HandshakeCase::inconsistent_counters:
      return "inconsistent counters";
  }
  HAST_UNREACHABLE();
}

SyncDecision decide_sync(const SecondaryView& secondary, const PrimaryView& primary) {
  HAST_ASSERT(primary.resuid != 0);  // the primary generates one before the handshake
  if (secondary.resuid == 0 && secondary.counters.local > 0) {
    // Never paired, yet it wrote as a primary (an unpaired primary later made secondary):
    // its data exists nowhere else. HAST would treat it as fresh and keep its stale bytes
    // in every extent the primary does not sync.
    if (!primary.virgin || primary.counters.local > 0) {
      SyncDecision decision{HandshakeCase::split_brain};
      decision.refusal = std::string(split_brain_errmsg);
      return decision;
    }
    SyncDecision decision{HandshakeCase::first_contact_full};
    decision.source = SyncSource::secondary;
    decision.map = MapToSend::all_ones;
    decision.adopt_resuid = true;
    decision.reply_virgin = false;
    return decision;
  }
  if (secondary.resuid == 0) return first_contact(primary);
  if (secondary.resuid != primary.resuid) {
    SyncDecision decision{HandshakeCase::resuid_mismatch};
    decision.refusal = fmt::format("Resource unique ID mismatch (primary={}, secondary={}).",
                                   primary.resuid, secondary.resuid);
    return decision;
  }
  const Counters& s = secondary.counters;
  const Counters& p = primary.counters;
  if (s.local > p.remote && s.remote == p.local) {
    return regular(HandshakeCase::primary_out_of_date, SyncSource::secondary);
  }
  if (s.local == p.remote && s.remote == p.local) {
    return regular(HandshakeCase::in_sync, SyncSource::primary);
  }
  if (s.local == p.remote && s.remote < p.local) {
    return regular(HandshakeCase::secondary_out_of_date, SyncSource::primary);
  }
  if (s.local > p.remote && p.local > s.remote) {
    SyncDecision decision{HandshakeCase::split_brain};
    decision.refusal = std::string(split_brain_errmsg);
    return decision;
  }
  HAST_ASSERT(s.local < p.remote || p.local < s.remote);
  SyncDecision decision{HandshakeCase::inconsistent_counters};
  decision.source = s.local > p.remote ? SyncSource::secondary : SyncSource::primary;
  decision.map = MapToSend::all_ones;
  decision.warning = fmt::format(
      "This should never happen, asking for full synchronization (primary(local={}, "
      "remote={}), secondary(local={}, remote={})).",
      p.local, p.remote, s.local, s.remote);
  return decision;
}

bool GenerationTracker::on_unreplicated_write() {
  if (raised_since_reset_) return false;
  raised_since_reset_ = true;
  counters_.local++;
  HAST_ASSERT(counters_.local != 0);
  return true;
}

bool GenerationTracker::on_virgin_secondary() {
  if (counters_.local != 0) return false;
  counters_.local = 1;
  return true;
}

bool GenerationTracker::on_sync_complete(const Counters& secondary) {
  Counters mirrored{secondary.remote, secondary.local};
  raised_since_reset_ = false;
  if (mirrored == counters_) return false;
  counters_ = mirrored;
  return true;
}

}  // namespace hast::replication
