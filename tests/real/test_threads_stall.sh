#!/usr/bin/env bash
# A stalled provider holds up only its own resource (DESIGN.md §7: a thread, scheduler and
# ring per resource). hastd a serves two resources: `slow`, whose provider is a FUSE file
# (nbdfuse over nbdkit's memory plugin behind its pause filter), and `shared` on a plain
# file. Two kinds of stall, each while `shared` takes, flushes, reads back and replicates
# writes and `hastctl status` answers:
#
# 1. nbdkit paused: a client's write and flush to `slow` hang on its disk. Those disk
#    operations go through io_uring, which finishes a blocking one in a kernel worker, so
#    `slow`'s thread itself keeps running (its status answers too). This checks that
#    nothing of the daemon waits on a stalled disk operation; it would pass as well with
#    every resource on one thread and ring.
# 2. nbdfuse stopped (SIGSTOP) while `slow` is in role init: `hastctl role primary slow`
#    makes `slow`'s thread open its provider, and stat(2) and open(2) are plain system
#    calls, outside the ring: the thread itself sleeps in the kernel, in FUSE's
#    request_wait_answer, until nbdfuse runs again. That is a blocking point in user
#    space. Were `shared` served by the same thread (one ring for all resources), its
#    writes would stall with it; were the provider opened on the main thread, the control
#    socket would. The test checks that the blocked thread is `hastd:slow` and that
#    `shared` and `hastctl status shared` answer meanwhile; once nbdfuse continues, the
#    role change completes and `slow` serves again. (Its status is not asked for while
#    it is blocked: status runs on the resource's thread and would wait.)
source "$(dirname "$0")/lib.sh"

NBDKIT_PID=
FUSE_PID=
# Resume, stop the daemons and unmount before lib.sh's cleanup removes the directory.
# (lib.sh's cleanup waits for every child: nbdfuse and nbdkit must be gone by then.)
stall_cleanup() {
  [ -n "$FUSE_PID" ] && kill -CONT "$FUSE_PID" 2>/dev/null || true
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

# 1. A stalled disk operation: nbdkit answers nothing; a client's write and flush to
# `slow` hang on a's disk.
[ "$(pause_ctl p)" = P ] || die "nbdkit did not pause"
timeout 120 qemu-io -f raw "$SLOW_URI" -c "write -P 0x77 1M 1M" -c flush > "$T/slow.out" 2>&1 &
slow_client=$!
sleep 1
kill -0 "$slow_client" 2>/dev/null || die "the write to slow did not stall: $(cat "$T/slow.out")"

# shared_serves PATTERN OFFSET RESOURCE...: `shared` takes a 4 MiB write of PATTERN at
# OFFSET, a flush and the read back within 15 s, and replicates it; `hastctl status`
# answers within 5 s for each RESOURCE.
shared_serves() {
  local pattern=$1 offset=$2 r
  shift 2
  local start=$SECONDS
  timeout 15 qemu-io -f raw "$(nbd_uri a)" -c "write -P $pattern $offset 4M" -c flush \
    -c "read -P $pattern $offset 4M" > "$T/shared.out" 2>&1 ||
    die "shared stalled: $(cat "$T/shared.out")"
  grep -q "Pattern verification failed" "$T/shared.out" && die "shared read back differs"
  timeout 5 "$HASTCTL" status -c "$T/hast.conf" --node hasta "$@" > "$T/status" ||
    die "hastctl status $* stalled"
  for r in "$@"; do
    grep -q "^$r[[:space:]]" "$T/status" || die "status: $(cat "$T/status")"
  done
  wait_synced 15
  data_identical || die "shared: the providers' data areas differ"
  log "shared served in $((SECONDS - start)) s while slow was stalled"
}

# Meanwhile `shared` serves and replicates, and the control socket answers for both.
shared_serves 0x33 2M shared slow
kill -0 "$slow_client" 2>/dev/null || die "the write to slow ended while nbdkit was paused"

# Resume: the hung write completes and reads back.
[ "$(pause_ctl r)" = R ] || die "nbdkit did not resume"
wait "$slow_client" || die "the write to slow failed: $(cat "$T/slow.out")"
qemu-io -f raw "$SLOW_URI" -c "read -P 0x77 1M 1M" -c "read -P 0x11 0 1M" > "$T/slow.out" ||
  die "slow read after resume"
grep -q "Pattern verification failed" "$T/slow.out" && die "slow read back differs"

# 2. A thread blocked in a system call: `slow` goes to init (its provider closed while
# nbdfuse runs: close(2) waits for FUSE too), nbdfuse stops, and `role primary slow`
# makes `slow`'s thread stat and open its provider.
ctl_cmd a role init slow || die "role init slow on a"
# The check reads each thread's wait channel, which a kernel may hide: it shows 0 then,
# as it does for a running thread (hastd's main thread mostly sleeps in io_uring_enter).
main_waits() { ! grep -qx 0 /proc/"${PID[a]}"/wchan; }
for _ in 1 2 3 4 5 6 7 8 9 10; do main_waits && break; sleep 0.1; done
main_waits || { echo "SKIP: this kernel shows no wait channel in /proc/PID/wchan"; exit 77; }
kill -STOP "$FUSE_PID"
timeout 120 "$HASTCTL" role -c "$T/hast.conf" --node hasta primary slow > "$T/role.out" 2>&1 &
role_client=$!

# fuse_waiter: prints the name of the thread of hastd a that waits for a FUSE answer.
fuse_waiter() {
  local task
  for task in /proc/"${PID[a]}"/task/*; do
    if [ "$(cat "$task/wchan" 2>/dev/null)" = request_wait_answer ]; then
      cat "$task/comm"
      return 0
    fi
  done
  return 1
}
wait_for 10 "a thread of hastd a waiting for FUSE" fuse_waiter
shared_serves 0x44 8M shared
blocked=$(fuse_waiter) || die "no thread of hastd a waits for FUSE any more: $(cat "$T/role.out")"
[ "$blocked" = hastd:slow ] || die "thread $blocked waits for slow's provider"
log "thread $blocked waits for FUSE in a system call; shared and the control socket did not"

# nbdfuse continues: the role change completes and `slow` serves again. (hastctl waits
# 20 s for a reply: on a slow machine it may have given up; the role change goes on.)
kill -CONT "$FUSE_PID"
wait "$role_client" || log "hastctl role primary slow: $(cat "$T/role.out")"
slow_primary() { [ "$(ctl_cmd a status slow | awk 'NR == 2 { print $3 }')" = primary ]; }
wait_for 20 "slow primary again" slow_primary
wait_for 30 "slow complete again" slow_complete
wait_for 10 "NBD socket of slow again" test -S "$T/a/slow.nbd"
qemu-io -f raw "$SLOW_URI" -c "write -P 0x55 2M 1M" -c flush -c "read -P 0x55 2M 1M" \
  -c "read -P 0x77 1M 1M" > "$T/slow.out" || die "slow after nbdfuse continued"
grep -q "Pattern verification failed" "$T/slow.out" && die "slow read back differs"
log "ok"
