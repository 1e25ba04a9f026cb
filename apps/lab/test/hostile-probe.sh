#!/bin/sh
# What a hostile task tries on its node. One line per attempt: "NAME: refused"
# or "NAME: ALLOWED"; the confinement test wants every one refused. Nothing
# here harms a node where an attempt succeeds: sysrq gets 'h' (help), the
# route, link and table are made inside the task's own sandbox, the module
# image is empty.
# PROBE_SECRETS: files a task must not read (':'-separated); PROBE_STATE_DIR:
# the node's state dir; PROBE_SOCKET: the manager's socket; PROBE_AGENT_PID:
# the agent's pid on the host; PROBE_DISK: MAJOR:MINOR of the node's disk;
# PROBE_FORKS=0: no fork past the pids limit.

try() {
  name=$1
  shift
  if "$@" >/dev/null 2>&1; then echo "$name: ALLOWED"; else echo "$name: refused"; fi
}
py() { python3 -c "import ctypes, sys; libc = ctypes.CDLL(None, use_errno=True); $1"; }

for f in $(echo "$PROBE_SECRETS" | tr : ' '); do try "read $f" cat "$f"; done
try "list the node's state dir" sh -c 'test -n "$(ls -A "$1")"' _ "$PROBE_STATE_DIR"
try "list other sandboxes' /etc/netns" sh -c 'test -n "$(ls -A /etc/netns)"'
try "connect to the manager's socket" node -e 'require("net").connect(process.argv[1]).on("connect", () => process.exit(0)).on("error", () => process.exit(1))' "$PROBE_SOCKET"
try "read the agent's environ" sh -c 'grep -q state-dir "/proc/$1/cmdline" && cat "/proc/$1/environ"' _ "$PROBE_AGENT_PID"
# (the brackets keep the patterns from matching this very command line)
try "see a process outside the task" sh -c 'test "$(ps -p 1 -o comm=)" != vipmesh-confine || ps -e -o args= | grep -q -e "[-]-state-dir" -e "[s]upervisor" -e "[v]ipmesh manager"'
try "add a route" ip route add 10.254.254.0/24 dev lo
try "add a link" ip link add probe0 type dummy
try "add an nft table" nft add table ip probe
try "load a module" py 'sys.exit(0 if libc.syscall(175, b"", 0, b"") == 0 or ctypes.get_errno() != 1 else 1)'
try "ptrace its init" py 'sys.exit(0 if libc.ptrace(16, 1, 0, 0) == 0 else 1)'
try "ptrace itself" py 'sys.exit(0 if libc.ptrace(0, 0, 0, 0) == 0 else 1)'
try "write /proc/sys" sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward'
try "write /proc/sysrq-trigger" sh -c 'echo h > /proc/sysrq-trigger'
try "see the node's disks in /dev" sh -c 'ls /dev | grep -q -E "^(vd|sd|nvme|xvd|loop|dm-)"'
try "open the node's disk" sh -c 'mknod /tmp/disk b "${PROBE_DISK%:*}" "${PROBE_DISK#*:}" && head -c 512 /tmp/disk'
try "write the root file system" touch /etc/probe
try "mount" mount -t tmpfs probe /mnt
try "make a user namespace" unshare --user true
try "leave its cgroup" sh -c 'echo $$ > /sys/fs/cgroup/pids/cgroup.procs'
# PROBE_FORKS=0 skips this one (a health check beside a starting task would starve it of pids)
[ "${PROBE_FORKS:-64}" = 0 ] || try "fork 64 processes" py '
import os, time
n = 0
for _ in range(64):
    try:
        if os.fork() == 0:
            time.sleep(0.2)
            os._exit(0)
        n += 1
    except OSError:
        break
for _ in range(n):
    os.wait()  # none left behind to take the pids of what the task starts next
sys.exit(0 if n == 64 else 1)'
echo "probe: done"
