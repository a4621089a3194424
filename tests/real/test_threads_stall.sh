#!/usr/bin/env bash
# A stalled provider holds up only its own resource (DESIGN.md §7: a thread, scheduler and
# ring per resource). hastd a serves two resources: `slow`, whose provider is a FUSE file
# (nbdfuse over nbdkit's memory plugin behind its pause filter), and `shared` on a plain
# file. With nbdkit paused and a client's write and flush to `slow` hanging on it,
# `shared` still takes, flushes, reads back and replicates writes, and `hastctl status`
# answers for both resources; once resumed, the hung write completes and reads back.
# (The disk operations go through io_uring, which finishes a blocking one in a kernel
# worker, so the resource's own thread keeps running: this checks that nothing of the
# daemon waits on the stalled disk, rather than the thread split alone.)
source "$(dirname "$0")/lib.sh"

NBDKIT_PID=
FUSE_PID=
# Resume, stop the daemons and unmount before lib.sh's cleanup removes the directory.
# (lib.sh's cleanup waits for every child: nbdfuse and nbdkit must be gone by then.)
stall_cleanup() {
  [ -S "$T/pause.sock" ] && timeout 5 bash -c "$(declare -f pause_ctl); T=$T; pause_ctl r" \
    > /dev/null 2>&1 || true
  local n
  for n in "${!PID[@]}"; do
    kill -9 "${PID[$n]}" 2>/dev/null || true
    wait "${PID[$n]}" 2>/dev/null || true
  done
  PID=()
  fusermount3 -u "$T/mnt" 2>/dev/null || umount -l "$T/mnt" 2>/dev/null || true
  for pid in $FUSE_PID $NBDKIT_PID; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  cleanup
}
trap stall_cleanup EXIT

# pause_ctl p|r: pauses or resumes nbdkit; prints its answer ('P' once nothing is in
# flight, 'R').
pause_ctl() {
  python3 - "$T/pause.sock" "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(20)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode())
print(s.recv(1).decode())
PY
}

# The slow provider: 32 MiB in nbdkit's memory, as the file $T/mnt/disk.
mkdir -p "$T/mnt"
nbdkit -f -U "$T/nbd.sock" --filter=pause memory 32M pause-control="$T/pause.sock" \
  > "$T/nbdkit.log" 2>&1 &
NBDKIT_PID=$!
wait_for 10 "nbdkit" test -S "$T/nbd.sock"
nbdfuse "$T/mnt/disk" "nbd+unix:///?socket=$T/nbd.sock" > "$T/nbdfuse.log" 2>&1 &
FUSE_PID=$!
wait_for 10 "nbdfuse" test -f "$T/mnt/disk"

write_config fullsync
add_resource slow "$T/mnt/disk" "$T/b/slow.img" "replication fullsync" "frontend nbd"
create_disks
truncate -s 32M "$T/b/slow.img"
for n in a b; do ctl_cmd "$n" create slow || die "hastctl create slow on $n"; done
start_node a
start_node b
for r in shared slow; do
  ctl_cmd b role secondary "$r" || die "role secondary $r on b"
  ctl_cmd a role primary "$r" || die "role primary $r on a"
done
PRIMARY=a
slow_complete() { [ "$(status_of a slow)" = complete ]; }
wait_status a complete
wait_for 30 "slow complete" slow_complete
wait_for 10 "NBD socket of slow" test -S "$T/a/slow.nbd"
SLOW_URI="nbd+unix:///slow?socket=$T/a/slow.nbd"
qemu-io -f raw "$SLOW_URI" -c "write -P 0x11 0 1M" -c flush > /dev/null || die "slow before pause"

# Stall: nbdkit answers nothing; a client's write and flush to `slow` hang on a's disk.
[ "$(pause_ctl p)" = P ] || die "nbdkit did not pause"
timeout 120 qemu-io -f raw "$SLOW_URI" -c "write -P 0x77 1M 1M" -c flush > "$T/slow.out" 2>&1 &
slow_client=$!
sleep 1
kill -0 "$slow_client" 2>/dev/null || die "the write to slow did not stall: $(cat "$T/slow.out")"

# Meanwhile `shared` serves and replicates, and the control socket answers for both.
start=$SECONDS
timeout 15 qemu-io -f raw "$(nbd_uri a)" -c "write -P 0x33 2M 4M" -c flush \
  -c "read -P 0x33 2M 4M" > "$T/shared.out" 2>&1 || die "shared stalled: $(cat "$T/shared.out")"
grep -q "Pattern verification failed" "$T/shared.out" && die "shared read back differs"
timeout 5 "$HASTCTL" status -c "$T/hast.conf" --node hasta > "$T/status" ||
  die "hastctl status stalled"
grep -q "^slow" "$T/status" && grep -q "^shared" "$T/status" || die "status: $(cat "$T/status")"
wait_synced 15
data_identical || die "shared: the providers' data areas differ"
log "shared served in $((SECONDS - start)) s while slow was stalled"
kill -0 "$slow_client" 2>/dev/null || die "the write to slow ended while nbdkit was paused"

# Resume: the hung write completes and reads back.
[ "$(pause_ctl r)" = R ] || die "nbdkit did not resume"
wait "$slow_client" || die "the write to slow failed: $(cat "$T/slow.out")"
qemu-io -f raw "$SLOW_URI" -c "read -P 0x77 1M 1M" -c "read -P 0x11 0 1M" > "$T/slow.out" ||
  die "slow read after resume"
grep -q "Pattern verification failed" "$T/slow.out" && die "slow read back differs"
log "ok"
