#!/usr/bin/env bash
# Split-brain: kill the primary, promote the secondary and write there, start the old
# primary as primary and write there too. When they meet again split-brain is detected,
# logged and hooked on both, and nothing is overwritten; HAST's recovery (§9: the node
# whose changes are dropped goes to init, is re-created and becomes secondary) brings the
# pair back, synchronised from the node that was kept.
source "$(dirname "$0")/lib.sh"

start_pair "${MODE:-fullsync}"
qemu-io -f raw "$(nbd_uri a)" -c "write -P 1 0 1M" > /dev/null || die "first write"
wait_synced

kill_node a
ctl_cmd b role primary shared || die "promote b"
wait_for 10 "NBD socket of b" test -S "$(nbd_socket b)"
qemu-io -f raw "$(nbd_uri b)" -c "write -P 2 1M 1M" > /dev/null || die "write on b"

start_node a
ctl_cmd a role primary shared || die "a back as primary"
wait_for 10 "NBD socket of a" test -S "$(nbd_socket a)"
qemu-io -f raw "$(nbd_uri a)" -c "write -P 3 2M 1M" > /dev/null || die "write on a"

# b gives way to a as secondary: the handshake finds both changed since they parted.
ctl_cmd b role secondary shared || die "b to secondary"
wait_for 20 "split-brain logged on b" grep -q "Split-brain" "$T/b/hastd.log"
split_brain_hooked() { [ "$(hooks_seen_on a split-brain)" -ge 1 ] && [ "$(hooks_seen_on b split-brain)" -ge 1 ]; }
wait_for 20 "split-brain hooks on both nodes" split_brain_hooked
grep -q "Split-brain" "$T/a/hastd.log" || die "split-brain not logged on a"
sleep 1
is_status a degraded || die "a should stay degraded, is $(status_of a)"

off=$(ctl_cmd a dump shared | awk '/localoff:/ { print $2 }')
holds() {  # holds NODE OFFSET PATTERN: 1 MiB of PATTERN at data OFFSET of NODE's provider
  qemu-io -f raw -r "$T/$1/disk.img" -c "read -P $3 $((off + $2)) 1M" | grep -qv "Pattern verification failed" &&
    ! qemu-io -f raw -r "$T/$1/disk.img" -c "read -P $3 $((off + $2)) 1M" | grep -q "Pattern verification failed"
}
holds b $((1 << 20)) 2 || die "b's own write was overwritten"
holds a $((2 << 20)) 3 || die "a's own write was overwritten"
holds b $((2 << 20)) 0 || die "a's split-brain write reached b"

# Recovery: keep a's data. On b: init, create, secondary.
ctl_cmd b role init shared || die "b to init"
ctl_cmd b create shared || die "re-create b"
ctl_cmd b role secondary shared || die "b to secondary after re-create"
PRIMARY=a
wait_synced 60
data_identical || die "providers differ after recovery"
holds b $((2 << 20)) 3 || die "a's data not on b after recovery"
log "ok"
