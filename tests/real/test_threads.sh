#!/usr/bin/env bash
# One thread per resource (DESIGN.md §7): two resources in one hastd each run on their own
# thread, named "hastd:<resource>" in /proc/<pid>/task/*/comm, besides the main thread;
# both replicate through NBD (data read back, providers identical); a resource removed by
# SIGHUP takes its thread with it and a resource added by SIGHUP gets a new one; a hastd
# killed with -9 and started again at once gets its listen address back.
source "$(dirname "$0")/lib.sh"

# comm names of the threads of hastd N, one a line.
threads_of() { cat /proc/"${PID[$1]}"/task/*/comm 2>/dev/null; }
has_thread() { threads_of "$1" | grep -qx "$2"; }
lacks_thread() { ! has_thread "$1" "$2"; }
# The thread id of the thread of hastd N named NAME.
tid_of() {
  local task
  for task in /proc/"${PID[$1]}"/task/*; do
    if [ "$(cat "$task/comm" 2>/dev/null)" = "$2" ]; then basename "$task"; fi
  done
  return 0
}

write_config memsync
add_resource other "$T/a/other.img" "$T/b/other.img" "replication fullsync" "frontend nbd"
cp "$T/hast.conf" "$T/hast.conf.both"
create_disks
create_resource other 32M
start_node a
start_node b

# Each daemon: a thread per resource, distinct from each other and from the main thread.
for n in a b; do
  wait_for 5 "thread hastd:shared in hastd $n" has_thread "$n" hastd:shared
  wait_for 5 "thread hastd:other in hastd $n" has_thread "$n" hastd:other
  shared_tid=$(tid_of "$n" hastd:shared)
  other_tid=$(tid_of "$n" hastd:other)
  [ -n "$shared_tid" ] && [ -n "$other_tid" ] || die "thread ids on $n: '$shared_tid' '$other_tid'"
  [ "$shared_tid" != "$other_tid" ] || die "one thread for both resources on $n"
  [ "$shared_tid" != "${PID[$n]}" ] && [ "$other_tid" != "${PID[$n]}" ] ||
    die "a resource runs on the main thread of hastd $n"
  log "hastd $n: main ${PID[$n]}, shared $shared_tid, other $other_tid"
done

for r in shared other; do
  ctl_cmd b role secondary "$r" || die "role secondary $r on b"
  ctl_cmd a role primary "$r" || die "role primary $r on a"
done
PRIMARY=a
other_complete() { [ "$(status_of a other)" = complete ] && [ "$(status_of b other)" = complete ]; }
wait_status a complete
wait_for 20 "other complete on both" other_complete
wait_for 10 "NBD socket of shared" test -S "$T/a/shared.nbd"
wait_for 10 "NBD socket of other" test -S "$T/a/other.nbd"

# Both resources at once, different data, each read back.
head -c $((8 << 20)) /dev/urandom > "$T/random.shared"
head -c $((8 << 20)) /dev/urandom > "$T/random.other"
nbdcopy --flush "$T/random.shared" "$(nbd_uri a)" & copy_shared=$!
nbdcopy --flush "$T/random.other" "nbd+unix:///other?socket=$T/a/other.nbd" & copy_other=$!
wait "$copy_shared" || die "nbdcopy into shared"
wait "$copy_other" || die "nbdcopy into other"
nbdcopy "$(nbd_uri a)" "$T/back.shared" || die "nbdcopy out of shared"
nbdcopy "nbd+unix:///other?socket=$T/a/other.nbd" "$T/back.other" || die "nbdcopy out of other"
cmp -n $((8 << 20)) "$T/random.shared" "$T/back.shared" || die "shared read back differs"
cmp -n $((8 << 20)) "$T/random.other" "$T/back.other" || die "other read back differs"

# Replicated: the data areas of each resource's providers are identical.
other_synced() {
  other_complete && ctl_cmd a list other | grep -q 'dirty: 0 '
}
wait_synced
wait_for 30 "other to synchronise" other_synced
data_identical || die "shared: the providers' data areas differ"
off=$(ctl_cmd a dump other | awk '/localoff:/ { print $2 }')
size=$(ctl_cmd a dump other | awk '/datasize:/ { print $2 }')
cmp -n "$size" -i "$off:$off" "$T/a/other.img" "$T/b/other.img" ||
  die "other: the providers' data areas differ"

# SIGHUP without `other`: its thread ends (after its role went to init); shared keeps its
# thread and its role.
reload_a() {
  reload_node a "$1"
  tail -n 3 "$T/a/hastd.log" | grep -q "Configuration reloaded successfully." ||
    die "reload ($1) failed"
}
shared_tid=$(tid_of a hastd:shared)
sed -i '/^resource other {/,$d' "$T/hast.conf"
reload_a "other removed"
wait_for 5 "the thread of other to end" lacks_thread a hastd:other
[ "$(tid_of a hastd:shared)" = "$shared_tid" ] || die "shared changed threads on reload"
[ "$(role_of a)" = primary ] || die "shared is no longer primary: $(role_of a)"

# SIGHUP with `other` again: a new thread, the resource in init.
cp "$T/hast.conf.both" "$T/hast.conf"
reload_a "other added"
wait_for 5 "a thread for the added other" has_thread a hastd:other
ctl_cmd a status other | awk 'NR == 2 { print $3 }' | grep -qx init || die "other not in init"

# kill -9 either node while the pair replicates and start it again at once, a few times:
# its listen address, held by the dead process's io_uring for a moment, is taken again
# (hastd retries for a while instead of exiting 71).
for round in 1 2 3 4; do
  for n in a b; do
    kill_node "$n"
    start_node "$n"
    role=primary
    [ "$n" = b ] && role=secondary
    ctl_cmd "$n" role "$role" shared || die "role $role on the restarted $n"
  done
  wait_status a complete
done
grep -q "address in use" "$T/a/hastd.log" "$T/b/hastd.log" && die "a restart found its address busy"
wait_for 5 "thread hastd:shared in the new hastd b" has_thread b hastd:shared

# A clean stop joins every thread: the daemon exits 0.
ctl_cmd a stop || die "hastctl stop"
wait "${PID[a]}" || die "hastd a exited with $?"
unset "PID[a]"
log "ok"
