#!/usr/bin/env bash
# The FUSE frontend end to end: each node names its own link (`frontend fuse <T>/a/link`,
# `<T>/b/link`). On the primary: fio with crc32c verification through the loop device,
# mkfs.ext4 on the link, files written, e2fsck clean. kill -9 the primary: the dead mount,
# the stale link and the loop device stay; the restarted hastd clears them and serves the
# same file system again. kill -9 it once more under a mounted file system: reads fail
# with EIO. Fail over to the other node: its link appears, e2fsck -fn finds nothing, the
# files read back identical, fio verifies what it wrote before the failover and writes
# again. A role change and a clean stop remove link, loop device and mount.
#
# Needs root, /dev/fuse, loop devices, mkfs.ext4, e2fsck and fio: without them it prints
# "SKIP: ..." and exits 0. Everything is cleaned up at exit, even on failure.
DISK_MB=${DISK_MB:-96}
source "$(dirname "$0")/lib.sh"

skip() {
  echo "SKIP: $*"
  exit 0
}
[ "$(id -u)" = 0 ] || skip "the FUSE frontend needs root"
[ -c /dev/fuse ] || skip "no /dev/fuse"
[ -c /dev/loop-control ] || skip "no loop devices"
for tool in mkfs.ext4 e2fsck fio blockdev; do
  command -v "$tool" > /dev/null || skip "no $tool"
done

# Where hastd mounts: next to each node's control socket, or /var/run/hast (= /run/hast)
# with a hastd that does not say where its control socket is.
MOUNT_DIRS=("$T/a/shared.fuse" "$T/b/shared.fuse" /run/hast/shared.fuse)

# Daemons first (a live one would serve requests below), then file systems on our loop
# devices, the loop devices, the FUSE mounts; then lib.sh's cleanup.
fuse_cleanup() {
  for n in "${!PID[@]}"; do kill -9 "${PID[$n]}" 2> /dev/null || true; done
  umount -l "$T/mnt" 2> /dev/null || true
  local backing dev
  for backing in /sys/block/loop*/loop/backing_file; do
    [ -r "$backing" ] || continue
    for dir in "${MOUNT_DIRS[@]}"; do
      if [ "$(cat "$backing" 2> /dev/null)" = "$dir/data" ]; then
        dev=/dev/$(basename "$(dirname "$(dirname "$backing")")")
        losetup -d "$dev" 2> /dev/null || true
      fi
    done
  done
  for dir in "${MOUNT_DIRS[@]}"; do
    while grep -q " $dir fuse.hast " /proc/mounts; do umount -l "$dir" || break; done
  done
  cleanup
}
trap fuse_cleanup EXIT

link_of() { echo "$T/$1/link"; }
device_of() { readlink -f "$(link_of "$1")"; }
is_served() { [ -b "$(link_of "$1")" ]; }
wait_link() { wait_for 30 "the link of $1" is_served "$1"; }
# The FUSE mount behind a node's loop device (from the kernel's view of its backing file).
mount_dir_of() {
  local dev
  dev=$(basename "$(device_of "$1")")
  dirname "$(cat "/sys/block/$dev/loop/backing_file")"
}
bound() { [ -e "/sys/block/$(basename "$1")/loop/backing_file" ]; }
dead_mount() { grep -q " $1 fuse.hast " /proc/mounts; }
# A killed hastd's listening socket may outlive it for a moment (its io_uring is torn
# down asynchronously): a restart right away could find the address in use.
port_released() { ! ss -ltn | grep -q "127.0.0.1:$PORT "; }
wait_port_released() {
  if command -v ss > /dev/null; then wait_for 10 "a's listen port to be released" port_released; fi
}

# fio_verify DEVICE [fio options]: 16 MiB of random 4 KiB writes at 48 MiB, verified.
fio_verify() {
  local device=$1
  shift
  fio --name=verify --filename="$device" --ioengine=libaio --direct=1 --rw=randwrite --bs=4k \
    --iodepth=16 --offset=48M --size=16M --verify=crc32c --do_verify=1 --randrepeat=1 \
    --output="$T/fio.out" "$@" || die "fio on $device: $(cat "$T/fio.out")"
}

check_files() {
  mount "$(link_of "$1")" "$T/mnt" || die "mount on $1"
  (cd "$T/mnt" && find . -type f -exec sha256sum {} + | sort -k 2) > "$T/sums.$1"
  umount "$T/mnt" || die "umount on $1"
  cmp "$T/sums" "$T/sums.$1" || die "files on $1 differ: $(diff "$T/sums" "$T/sums.$1")"
}

write_config "${MODE:-memsync}"
for n in a b; do
  sed -i "s|^\( *local $T/$n/disk.img\)\$|\1\n    frontend fuse $(link_of "$n")|" "$T/hast.conf"
done
[ "$(grep -c 'frontend fuse' "$T/hast.conf")" = 2 ] || die "config edit: $(cat "$T/hast.conf")"
start_written_pair
wait_link a
datasize=$(ctl_cmd a dump shared | awk '/datasize:/ { print $2 }')
size=$((datasize / 4096 * 4096))  # whole 4 KiB blocks
[ "$(blockdev --getsize64 "$(link_of a)")" = "$size" ] || die "device size is not $size"
[ "$(blockdev --getss "$(link_of a)")" = 4096 ] || die "logical block size not 4096"
log "a serves $(device_of a) ($size bytes) from $(mount_dir_of a)"

# fio through the loop device, then a file system on the first 40 MiB.
fio_verify "$(device_of a)"
mkfs.ext4 -q -F "$(link_of a)" 40M || die "mkfs.ext4"
mkdir -p "$T/mnt"
mount "$(link_of a)" "$T/mnt" || die "mount"
head -c $((8 << 20)) /dev/urandom > "$T/mnt/big"
seq 1 100000 > "$T/mnt/numbers"
mkdir "$T/mnt/dir" && echo hello > "$T/mnt/dir/small"
(cd "$T/mnt" && find . -type f -exec sha256sum {} + | sort -k 2) > "$T/sums"
sync
umount "$T/mnt" || die "umount"
e2fsck -fn "$(link_of a)" > "$T/fsck.out" 2>&1 || die "e2fsck on a: $(cat "$T/fsck.out")"

# kill -9: the kernel keeps the dead mount, the link and the loop device bound to the dead
# file.
dir_a=$(mount_dir_of a)
loop_a=$(device_of a)
kill_node a
dead_mount "$dir_a" || die "no dead mount left on $dir_a"
[ -L "$(link_of a)" ] || die "the link went with hastd"
bound "$loop_a" || die "$loop_a did not stay bound"

# The restarted hastd clears what is left and serves the same file system again.
wait_port_released
start_node a
ctl_cmd a role primary shared || die "role primary on a after the restart"
wait_link a
for leftover in "removed stale link $(link_of a) -> $loop_a" "detached stale loop device $loop_a" \
  "unmounted the stale FUSE mount on $dir_a"; do
  grep -qF "$leftover" "$T/a/hastd.log" || die "leftover not cleared: $leftover"
done
wait_status a complete
e2fsck -fn "$(link_of a)" > "$T/fsck.out" 2>&1 || die "e2fsck after restart: $(cat "$T/fsck.out")"
check_files a

# kill -9 under a mounted file system: what the application sees is EIO.
mount -o ro,noload "$(link_of a)" "$T/mnt" || die "mount read-only"
loop_a=$(device_of a)
kill_node a
dd if="$T/mnt/big" of=/dev/null bs=4k count=1 iflag=direct 2> "$T/dd.out" &&
  die "a read through the dead device succeeded"
grep -q "Input/output error" "$T/dd.out" || die "not EIO: $(cat "$T/dd.out")"
umount "$T/mnt" || umount -l "$T/mnt"

# Failover: b's link appears; the file system is clean and the files identical.
ctl_cmd b role primary shared || die "promote b"
wait_link b
e2fsck -fn "$(link_of b)" > "$T/fsck.out" 2>&1 || die "e2fsck on b: $(cat "$T/fsck.out")"
check_files b
fio_verify "$(device_of b)" --verify_only
fio_verify "$(device_of b)"

# A role change takes link, loop device and mount away; back to primary brings them back.
dir_b=$(mount_dir_of b)
loop_b=$(device_of b)
ctl_cmd b role secondary shared || die "role secondary on b"
[ ! -e "$(link_of b)" ] && [ ! -L "$(link_of b)" ] || die "link of b left after the role change"
! bound "$loop_b" || die "$loop_b still bound after the role change"
! dead_mount "$dir_b" || die "$dir_b still mounted after the role change"
ctl_cmd b role primary shared || die "role primary on b again"
wait_link b
check_files b

# A clean stop takes link, loop device and mount away.
loop_b=$(device_of b)
ctl_cmd b stop || die "hastctl stop"
wait "${PID[b]}" || die "hastd b exited with $?"
unset "PID[b]"
[ ! -e "$(link_of b)" ] && [ ! -L "$(link_of b)" ] || die "link of b left behind"
! bound "$loop_b" || die "$loop_b still bound"
! dead_mount "$dir_b" || die "$dir_b still mounted"
log "ok"
