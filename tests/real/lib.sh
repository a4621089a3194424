# Shared helpers of the real tests: two hastd processes on one machine (hasta on
# 127.0.0.1, hastb on 127.0.0.2, or both on [::1] with two ports), file-backed providers,
# NBD on Unix sockets, short timeouts. Each test sources this file with the build
# directory as $1; everything lives in a temporary directory removed at exit.
set -euo pipefail

BUILD=${1:?usage: $0 BUILD_DIR}
HASTD=$BUILD/real/hastd
HASTCTL=$BUILD/real/hastctl
T=$(mktemp -d /tmp/hast-real.XXXXXX)
PORT=$((20000 + RANDOM % 20000))
DISK_MB=${DISK_MB:-64}
declare -A PID=()

log() { echo "[$(date +%T.%N | cut -c1-12)] $*" >&2; }
die() {
  log "FAILED: $*"
  for n in a b; do
    [ -f "$T/$n/hastd.log" ] && { echo "---- hastd $n log ----" >&2; tail -n 60 "$T/$n/hastd.log" >&2; }
  done
  [ -f "$T/hooks.log" ] && { echo "---- hooks ----" >&2; cat "$T/hooks.log" >&2; }
  exit 1
}
cleanup() {
  for n in "${!PID[@]}"; do kill -9 "${PID[$n]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
  # A killed hastd leaves its FUSE frontends mounted and their loop devices bound (the
  # next hastd would clean them up): unmount and detach whatever lives under $T.
  local mount_point loop
  for loop in $(losetup -n -O NAME,BACK-FILE 2>/dev/null | awk -v t="$T/" 'index($2, t) == 1 { print $1 }'); do
    losetup -d "$loop" 2>/dev/null || true
  done
  for mount_point in $(awk -v t="$T/" 'index($2, t) == 1 { print $2 }' /proc/mounts); do
    umount -l "$mount_point" 2>/dev/null || true
  done
  rm -rf "$T"
}
trap cleanup EXIT

node_name() { [ "$1" = a ] && echo hasta || echo hastb; }
# write_config MODE [ipv6]: the pair's hast.conf.
write_config() {
  local mode=$1 family=${2:-ipv4}
  local la="127.0.0.1:$PORT" lb="127.0.0.2:$PORT" sa=127.0.0.1 sb=127.0.0.2
  if [ "$family" = ipv6 ]; then
    la="[::1]:$PORT"; lb="[::1]:$((PORT + 1))"; sa="[::1]"; sb="[::1]"
  fi
  mkdir -p "$T/a" "$T/b"
  cat > "$T/hook.sh" <<HOOK
#!/bin/sh
echo "\$(date +%s.%N) \$PPID \$*" >> "$T/hooks.log"
HOOK
  chmod +x "$T/hook.sh"
  cat > "$T/hast.conf" <<CONF
on hasta {
  control uds://$T/a/control
  pidfile $T/a/hastd.pid
  listen tcp://$la
}
on hastb {
  control uds://$T/b/control
  pidfile $T/b/hastd.pid
  listen tcp://$lb
}
timeout 2
exec $T/hook.sh

resource shared {
  replication $mode
  frontend nbd
  on hasta {
    local $T/a/disk.img
    remote tcp://$lb
    source tcp://$sa
  }
  on hastb {
    local $T/b/disk.img
    remote tcp://$la
    source tcp://$sb
  }
}
CONF
}

# add_resource NAME LOCAL_A LOCAL_B [SETTING...]: appends resource NAME to hast.conf (IPv4
# pair), its provider LOCAL_A on hasta and LOCAL_B on hastb, with each SETTING ("frontend
# nbd", ...) as a line of its own before the `on` sections.
add_resource() {
  local name=$1 local_a=$2 local_b=$3 setting
  shift 3
  {
    echo "resource $name {"
    for setting in "$@"; do echo "  $setting"; done
    cat <<CONF
  on hasta {
    local $local_a
    remote tcp://127.0.0.2:$PORT
    source tcp://127.0.0.1
  }
  on hastb {
    local $local_b
    remote tcp://127.0.0.1:$PORT
    source tcp://127.0.0.2
  }
}
CONF
  } >> "$T/hast.conf"
}

# ctl_cmd N SUBCOMMAND ARGS...: hastctl with the subcommand first, as HAST wants it.
ctl_cmd() { local n=$1 sub=$2; shift 2; "$HASTCTL" "$sub" -c "$T/hast.conf" --node "$(node_name "$n")" "$@"; }

create_disks() {
  for n in a b; do
    truncate -s "${DISK_MB}M" "$T/$n/disk.img"
    ctl_cmd "$n" create shared || die "hastctl create on $n"
  done
}

start_node() {
  local n=$1
  "$HASTD" -F -c "$T/hast.conf" --node "$(node_name "$n")" \
    --test-keepalive-ms 300 --test-reconnect-ms 300 >> "$T/$n/hastd.log" 2>&1 &
  PID[$n]=$!
  echo "${PID[$n]}" >> "$T/$n/pids"
  wait_for 10 "hastd $n answers" ctl_cmd "$n" status
}

# create_resource NAME SIZE: a SIZE (truncate's units) provider $T/{a,b}/NAME.img on each
# node, then `hastctl create NAME` on each.
create_resource() {
  local n
  for n in a b; do
    truncate -s "$2" "$T/$n/$1.img"
    ctl_cmd "$n" create "$1" || die "hastctl create $1 on $n"
  done
}

kill_node() { kill -9 "${PID[$1]}"; wait "${PID[$1]}" 2>/dev/null || true; unset "PID[$1]"; }

# wait_for SECONDS WHAT COMMAND...: retries COMMAND until it succeeds.
wait_for() {
  local seconds=$1 what=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" > /dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "timed out after ${seconds}s waiting for: $what"
    sleep 0.1
  done
}

# status_of N [RESOURCE]: the status of RESOURCE (default shared) on N.
status_of() { ctl_cmd "$1" status "${2:-shared}" | awk 'NR == 2 { print $2 }'; }
role_of() { ctl_cmd "$1" status shared | awk 'NR == 2 { print $3 }'; }
is_status() { [ "$(status_of "$1")" = "$2" ]; }
wait_status() { wait_for "${3:-20}" "$1 status $2" is_status "$1" "$2"; }

# reloads_finished N: how many reloads hastd N has finished (either way), from its log.
reloads_finished() {
  grep -c "Configuration \(reloaded successfully\|not reloaded\)" "$T/$1/hastd.log" || true
}
reloads_at_least() { [ "$(reloads_finished "$1")" -ge "$2" ]; }
# reload_node N WHAT: SIGHUP to hastd N, then wait for the outcome of that reload in its log.
reload_node() {
  local want=$(($(reloads_finished "$1") + 1))
  kill -HUP "${PID[$1]}"
  wait_for 20 "hastd $1 to reload ($2)" reloads_at_least "$1" "$want"
}

# Sync done: hastctl list shows no dirty bytes and the status is complete on both.
synced() { is_status a complete && is_status b complete && ctl_cmd "$PRIMARY" list shared | grep -q 'dirty: 0 '; }
wait_synced() { wait_for "${1:-30}" "synchronisation to finish" synced; }

nbd_socket() { echo "$T/$1/shared.nbd"; }
nbd_uri() { echo "nbd+unix:///shared?socket=$(nbd_socket "$1")"; }

# The data areas of both providers (after the metadata and the activemap) are identical.
data_identical() {
  local off size
  off=$(ctl_cmd a dump shared | awk '/localoff:/ { print $2 }')
  size=$(ctl_cmd a dump shared | awk '/datasize:/ { print $2 }')
  cmp -n "$size" -i "$off:$off" "$T/a/disk.img" "$T/b/disk.img"
}

hooks_seen() { grep -c " $1 shared" "$T/hooks.log" 2>/dev/null || true; }
# hooks_seen_on NODE EVENT: how many EVENT hooks a hastd of NODE ran (the hook's parent).
hooks_seen_on() {
  local count=0 pid
  while read -r pid; do
    count=$((count + $(grep -c "^[^ ]* $pid $2 shared" "$T/hooks.log" 2>/dev/null || true)))
  done < "$T/$1/pids"
  echo "$count"
}

# start_pair MODE [ipv6]: config, disks, both daemons, b secondary, a primary, in sync.
start_pair() {
  write_config "$@"
  start_written_pair
  wait_for 10 "NBD socket of a" test -S "$(nbd_socket a)"
}

# start_written_pair: start_pair for a config already written (and perhaps edited).
start_written_pair() {
  create_disks
  start_node a
  start_node b
  ctl_cmd b role secondary shared || die "role secondary on b"
  ctl_cmd a role primary shared || die "role primary on a"
  PRIMARY=a
  wait_status a complete
  wait_status b complete
}
