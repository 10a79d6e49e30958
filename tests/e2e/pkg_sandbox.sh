#!/bin/sh
# Runs a script as root in a throw-away copy of this machine, for the package
# tests: an overlay of / whose writes land in SCRATCH/upper (so dpkg's
# database, /etc/passwd and /usr of the real system are never written), in
# new mount, network (loopback only) and PID namespaces. Everything started
# inside dies with the script (unshare --kill-child); the mounts vanish with
# the mount namespace. The caller removes SCRATCH.
#
# Usage: pkg_sandbox.sh SCRATCH SCRIPT [ARGS...]
#   SCRIPT and ARGS are paths as seen inside (SCRATCH/upper/x is /x there).
set -eu
SCRATCH=$1
shift
mkdir -p "$SCRATCH/upper" "$SCRATCH/work" "$SCRATCH/merged"
exec unshare --mount --net --pid --fork --kill-child --propagation private sh -eu -c '
S=$1; shift
M=$S/merged
mount -t overlay overlay -o "lowerdir=/,upperdir=$S/upper,workdir=$S/work" "$M"
mount -t proc proc "$M/proc"
mount --bind /dev "$M/dev"
mount -t tmpfs tmpfs "$M/run"
mount -t tmpfs tmpfs "$M/tmp"
ip link set lo up
exec chroot "$M" "$@"
' sandbox "$SCRATCH" "$@"
