#!/usr/bin/env bash
# kill -9 the primary during writes, promote the secondary. fullsync and memsync: every
# write the client saw acknowledged reads back on the new primary. async: every region
# holds the value written to it or its initial value (zeroes), nothing else.
source "$(dirname "$0")/lib.sh"

mode=${MODE:-fullsync}
start_pair "$mode"
count=300
commands=()
for ((i = 0; i < count; i++)); do
  commands+=(-c "write -P $((i % 255 + 1)) $((i * 65536)) 64k" -c "sleep 4")
done
qemu-io -f raw "$(nbd_uri a)" "${commands[@]}" > "$T/writes.out" 2>&1 &
writer=$!
sleep 0.6
kill_node a
wait "$writer" || true
acked=$(grep -c '^wrote 65536/65536' "$T/writes.out" || true)
log "$acked of $count writes acknowledged before the kill"
[ "$acked" -gt 0 ] && [ "$acked" -lt "$count" ] || die "the kill did not land during the writes ($acked)"

ctl_cmd b role primary shared || die "promote b"
wait_for 10 "NBD socket of b" test -S "$(nbd_socket b)"
URI=$(nbd_uri b)
checks=()
for ((i = 0; i < count; i++)); do
  checks+=(-c "read -P $((i % 255 + 1)) $((i * 65536)) 64k")
done
# qemu-io exits non-zero when a pattern differs: the answers are judged below.
qemu-io -f raw "$URI" "${checks[@]}" > "$T/reads.out" 2>&1 || true
grep -q "read failed" "$T/reads.out" && die "reads failed: $(grep -m3 'read failed' "$T/reads.out")"
# The i-th "read" answer tells whether region i holds write i.
mapfile -t verdicts < <(grep -E '^(read |Pattern verification failed)' "$T/reads.out" |
  awk '/^Pattern/ { bad = 1; next } { print (bad ? "bad" : "ok"); bad = 0 }')
[ "${#verdicts[@]}" -eq "$count" ] || die "expected $count read answers, got ${#verdicts[@]}"
acked_offsets=$(awk '/^wrote 65536\/65536 bytes at offset/ { print $6 }' "$T/writes.out")
lost=0
for ((i = 0; i < count; i++)); do
  [ "${verdicts[$i]}" = ok ] && continue
  if [ "$mode" != async ] && grep -qx "$((i * 65536))" <<< "$acked_offsets"; then
    log "acknowledged write $i (offset $((i * 65536))) lost"
    lost=$((lost + 1))
    continue
  fi
  # Not the write: it must still be the initial value.
  qemu-io -f raw "$URI" -c "read -P 0 $((i * 65536)) 64k" | grep -q "Pattern verification failed" &&
    die "region $i holds neither write $i nor zeroes"
done
[ "$lost" -eq 0 ] || die "$lost acknowledged writes lost in $mode"
log "ok ($mode)"
