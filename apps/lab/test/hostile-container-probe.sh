#!/bin/sh
# What a hostile container tries on its node, with busybox alone (the sample
# image's tools; hostile-probe.sh is the process tasks' probe). One line per
# attempt: "NAME: refused" or "NAME: ALLOWED"; the containers test wants every
# one refused. Nothing here harms a node where an attempt succeeds: sysrq gets
# 'h' (help), the route and link are made inside the task's own sandbox.
# PROBE_DISK: MAJOR:MINOR of the node's disk.

try() {
  name=$1
  shift
  if "$@" >/dev/null 2>&1; then echo "$name: ALLOWED"; else echo "$name: refused"; fi
}

try "see a process of the node" sh -c 'cat /proc/[0-9]*/cmdline | tr "\0" " " | grep -q -e "[c]ontainerd" -e "[-]-state-dir" -e "[v]ipmesh agent"'
try "add a route" ip route add 10.254.254.0/24 dev lo
try "add a link" ip link add probe0 type dummy
# busybox's date says "can't set date" and still exits 0: its complaint is the refusal (the time asked is now's)
try "set the node's clock" sh -c '! date -s "$(date "+%Y-%m-%d %H:%M:%S")" 2>&1 >/dev/null | grep -q "can.t set"'
try "rename the node" hostname probe
try "mount" sh -c 'mkdir -p /tmp/m && mount -t tmpfs probe /tmp/m'
try "make a network namespace" unshare -n true
try "make a user namespace" unshare -U true
try "enter another namespace" nsenter -t 1 -u true
try "write /proc/sys" sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward'
try "write /proc/sysrq-trigger" sh -c 'echo h > /proc/sysrq-trigger'
try "read /proc/kcore" sh -c 'head -c 1 /proc/kcore | grep -q .'
try "read /proc/keys" sh -c 'grep -q . /proc/keys'
try "write /sys" sh -c 'echo 1 > /sys/kernel/profiling'
try "open the node's disk" sh -c 'mknod /tmp/disk b "${PROBE_DISK%:*}" "${PROBE_DISK#*:}" && head -c 512 /tmp/disk | grep -q .'
try "leave its cgroup" sh -c 'for f in /sys/fs/cgroup/*/cgroup.procs /sys/fs/cgroup/cgroup.procs; do echo $$ 2>/dev/null > "$f" && exit 0; done; exit 1'
try "fork 64 processes" sh -c 'i=0; while [ $i -lt 64 ]; do sleep 2 & i=$((i+1)); done; n=$(ls -d /proc/[0-9]* | wc -l); wait; [ "$n" -ge 64 ]'
# a refused fork ends that shell, leaving its sleeps to PID 1: they end, and are reaped, before anything else runs
sleep 3
echo "probe: done"
