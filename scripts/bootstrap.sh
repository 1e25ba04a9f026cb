#!/usr/bin/env bash
# Installs what vipmesh needs, when it is missing: Debian packages first (as
# root), then the npm packages of the lock file. Safe to run again: it does
# nothing when everything is there. Called by `npm start` and `npm test`.
set -euo pipefail
cd "$(dirname "$0")/.."

# command -> Debian package. ip/bridge build the lab and the overlay; nft balances
# VIPs inside sandboxes; conntrack flushes UDP flows of endpoints that left;
# nsenter and unshare run agents and tasks in namespaces; curl and dig probe
# tasks and the embedded DNS in the demo and tests; haproxy is what haproxy-gen
# feeds (the demo and its tests run a real one); qemu, busybox, cpio and kmod
# boot Debian's kernel for the tests that need IPVS (packages/kernel-vm), and
# ipvsadm programs it; tcpdump watches the underlay in the encrypted-overlay
# VM test; cc builds the embedded DNS's UDP thread (apps/agent/src/dns/replay.c)
# on npm ci; make/g++/python3 build better-sqlite3 when no prebuilt binary can
# be fetched. containerd, its runc shim and runc run tasks with an image (one
# containerd per lab node, started by the lab: the system's service is not).
# etcd holds the state of a cluster with several managers (lab --managers N
# runs one member per manager, started by the lab); etcdctl backs it up.
declare -A wanted=([ip]=iproute2 [bridge]=iproute2 [nft]=nftables [conntrack]=conntrack [nsenter]=util-linux [unshare]=util-linux
  [curl]=curl [dig]=bind9-dnsutils [haproxy]=haproxy [qemu-system-x86_64]=qemu-system-x86 [busybox]=busybox-static
  [cpio]=cpio [depmod]=kmod [ipvsadm]=ipvsadm [tcpdump]=tcpdump [cc]=gcc [make]=make [g++]=g++ [python3]=python3
  [containerd]=containerd [containerd-shim-runc-v2]=containerd [ctr]=containerd [runc]=runc
  [etcd]=etcd-server [etcdctl]=etcd-client)
missing=()
for cmd in "${!wanted[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${wanted[$cmd]}")
done
if ((${#missing[@]} > 0)); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "bootstrap: missing Debian packages: ${missing[*]} (run as root, or apt-get install them)" >&2
    exit 1
  fi
  echo "bootstrap: installing ${missing[*]}" >&2
  apt-get update -qq
  # no service is started by the install (containerd's, above all: the lab runs its own, one per node);
  # policy-rc.d is Debian's switch for that, in place only for the install's duration
  policy=""
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 0755 "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  # shellcheck disable=SC2046 # one word per package, duplicates removed
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${missing[@]}" | sort -u) >/dev/null
  if [[ -n $policy ]]; then rm -f "$policy" && trap - EXIT; fi
fi

# the docker CLI, which drives the manager's Docker Engine API (the demo and the lab's docker test):
# where none is on the PATH, the `docker` binary alone out of Debian's docker.io package — downloaded
# and unpacked, never installed, so no daemon, containerd or iptables rules come with it
if ! command -v docker >/dev/null 2>&1; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "bootstrap: no docker CLI (run as root to take it from Debian's docker.io package)" >&2
    exit 1
  fi
  echo "bootstrap: the docker CLI from Debian's docker.io package (the binary alone)" >&2
  deb=$(mktemp -d)
  trap 'rm -rf "$deb"' EXIT
  chown _apt "$deb" 2>/dev/null || true # apt-get download fetches as _apt where that user exists
  (cd "$deb" && apt-get download -qq docker.io 2>/dev/null || { apt-get update -qq && apt-get download -qq docker.io; })
  dpkg-deb -x "$deb"/docker.io_*.deb "$deb/root"
  install -m 0755 "$deb/root/usr/bin/docker" /usr/local/bin/docker
  rm -rf "$deb"
  trap - EXIT
fi

# npm packages: install when node_modules is missing or older than the lock file
stamp=node_modules/.vipmesh-installed
if [[ ! -f $stamp ]] || ! cmp -s package-lock.json "$stamp"; then
  echo "bootstrap: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json "$stamp"
fi
