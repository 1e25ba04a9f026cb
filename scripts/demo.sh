#!/usr/bin/env bash
# The main job: a 3-node lab on this machine (one network namespace per node,
# a real manager, a real agent and a containerd per node) and the seed scenario: the overlay
# network collabnet (encrypted where the kernel has ESP), the 3-replica service collabweb — a
# container image, loaded on every node since no registry is reachable here — spread
# over the nodes, its VIP balanced by the kernel (random, rr, client-IP
# affinity) and resolved by the embedded DNS, its tasks reaching each other
# across nodes over VXLAN, and the routing mesh: its published port answered
# by every node, a node without a task too (and a host-mode port), and an
# external HAProxy fed by haproxy-gen in front of it all. Then the same lab
# driven by the real `docker` CLI through the manager's Docker Engine API: the
# seed's service read back, and a small compose stack deployed, reached through
# its published port and removed. It stays up until Ctrl-C, then removes
# everything it made.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/bin:$PATH"
LAB=demo

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
say() { printf '\n# %s\n' "$*"; }
gen=""
# the docker CLI with a config of its own: the user's ~/.docker (contexts, credentials) plays no part
docker_config=$(mktemp -d)
export DOCKER_CONFIG=$docker_config
images=$(mktemp -d)
cleanup() {
  say "Ctrl-C: removing the lab"
  if [[ -n $gen ]]; then kill "$gen" 2>/dev/null || true; fi # gone already: the lab goes all the same (set -e)
  vipmesh lab down --name "$LAB" >/dev/null 2>&1 || true
  rm -rf "$docker_config" "$images"
}

if [[ $(id -u) -ne 0 ]]; then echo "the lab makes network namespaces: run as root" >&2; exit 1; fi
vipmesh lab down --name "$LAB" >/dev/null 2>&1 || true
trap cleanup EXIT
export VIPMESH_HOST=/run/vipmesh/$LAB/manager.sock

say "A 3-node lab: namespaces vm-$LAB-node1..3 on an underlay bridge, a manager, an agent and a containerd per node"
step vipmesh lab up --name "$LAB" --nodes 3
step vipmesh node ls

# the seed scenario's collabnet is encrypted: IPsec ESP between the nodes, which needs esp4 in this kernel
if [[ -d /sys/module/esp4 ]] || modprobe -q esp4 2>/dev/null; then
  say "1. The overlay network, encrypted: VXLAN between the nodes travels in IPsec ESP (SECURITY.md)"
  step vipmesh network create --driver overlay --subnet 10.0.3.0/24 --opt encrypted collabnet
else
  say "1. The overlay network, not encrypted: this kernel has no ESP (esp4), and an agent that cannot"
  say "   encrypt refuses to attach tasks to an encrypted network rather than send plaintext"
  step vipmesh network create --driver overlay --subnet 10.0.3.0/24 collabnet
fi

say "2-3. collabweb: three replicas of a container image, spread over the nodes. The seed ran nginx; no registry"
say "   is reachable from here, so the lab's sample image stands in for it: busybox httpd, built on this machine"
say "   from busybox-static, whose page says which task answered (as vipmesh whoami does). Loaded on every node:"
step vipmesh lab image --out "$images/collabweb.tar"
step vipmesh image load "$images/collabweb.tar"
step vipmesh image ls
step vipmesh service create --replicas 3 --name collabweb --network collabnet --image vipmesh.local/collabweb:1
step vipmesh service ps collabweb
say "Where a registry is reachable, nginx itself: each node pulls it into its containerd on first use (the task says"
say "'preparing' meanwhile), e.g. 'vipmesh service create --replicas 3 --name collabweb --network collabnet --image nginx'"
say "Each task is a container in its sandbox: PID 1 is the image's httpd, / the image's, the hostname the task's:"
step vipmesh exec collabweb.1 -- sh -c 'echo "PID 1: $(tr "\0" " " </proc/1/cmdline)"; echo "hostname: $(hostname)"; ls /'


say "4. Its virtual IP, in Endpoint.VirtualIPs as 'docker service inspect' shows it"
vip=$(vipmesh service inspect collabweb | node -e '
  const [s] = JSON.parse(require("fs").readFileSync(0, "utf8"));
  console.log(s.Endpoint.VirtualIPs[0].Addr.split("/")[0]);')
vipmesh service inspect collabweb | node -e '
  const [s] = JSON.parse(require("fs").readFileSync(0, "utf8"));
  console.log(JSON.stringify(s.Endpoint.VirtualIPs));'

say "6. A second service on the same network, collab-box, gets its own VIP"
step vipmesh service create --name collab-box --network collabnet -- sleep infinity
vipmesh service inspect collab-box | node -e '
  const [s] = JSON.parse(require("fs").readFileSync(0, "utf8"));
  console.log(JSON.stringify(s.Endpoint.VirtualIPs));'

say "From inside collab-box, the embedded DNS (127.0.0.11) resolves collabweb to its VIP, and tasks.collabweb to its tasks:"
step vipmesh exec collab-box.1 -- dig +short collabweb
step vipmesh exec collab-box.1 -- dig +short tasks.collabweb

say "Requests to http://collabweb from inside collab-box are spread over the three replicas by the kernel:"
for _ in 1 2 3 4 5 6 7 8 9; do
  vipmesh exec collab-box.1 -- curl -s --max-time 2 "http://collabweb/" | grep -E '^Task:' || true
done | sort | uniq -c

say "5. The load-balancing state inside collab-box's sandbox, read from the kernel (the seed used ipvsadm;"
say "   here the nftables dataplane: one interval map from VIP x random slice to task IP). Read from the node:"
say "   the task itself runs confined, without CAP_NET_ADMIN, and can neither read nor change it"
box=$(vipmesh service ps --json collab-box | node -e '
  const tasks = JSON.parse(require("fs").readFileSync(0, "utf8"));
  console.log(tasks.find((t) => t.Status.State === "running").ID);')
step ip netns exec "$(ip netns list | awk '{print $1}' | grep -- "-$box\$")" nft list map ip vipmesh be

say "Round-robin, as the seed's IPVS did it: six requests answered by the three replicas in turn"
step vipmesh service update --lb-scheduler rr collabweb
for _ in 1 2 3 4 5 6; do
  vipmesh exec collab-box.1 -- curl -s --max-time 2 "http://collabweb/" | grep -E '^Task:' || true
done

say "Client-IP affinity: collab-box's new connections all go to one replica (for 10 min after its last)"
step vipmesh service update --lb-affinity client-ip --lb-affinity-timeout 600 collabweb
for _ in 1 2 3 4 5 6; do
  vipmesh exec collab-box.1 -- curl -s --max-time 2 "http://collabweb/" | grep -E '^Task:' || true
done | sort | uniq -c

say "Which tasks stand behind each VIP on collabnet, and whether they take new connections (Docker's network inspect -v):"
vipmesh network inspect --verbose collabnet | node -e '
  const [n] = JSON.parse(require("fs").readFileSync(0, "utf8"));
  for (const [name, s] of Object.entries(n.Services))
    console.log(`${name.padEnd(11)} VIP ${s.VIP.padEnd(9)} ${s.Tasks.map((t) => `${t.EndpointIP}@${t.Info["Host IP"]}${t.Ready ? "" : " (not ready)"}`).join("  ")}`);'

say "Each task reaches the others by task IP, across nodes, over VXLAN"
addrs=$(vipmesh service ps collabweb --json | node -e '
  const ts = JSON.parse(require("fs").readFileSync(0, "utf8")).filter((t) => t.Status.State === "running");
  console.log(ts.map((t) => t.NetworksAttachments[0].Addresses[0].split("/")[0]).join(" "));')
for slot in 1 2 3; do
  for addr in $addrs; do
    printf 'collabweb.%s -> %-10s ' "$slot" "$addr"
    # busybox wget: its own -T crashes (Debian 1.35): busybox timeout bounds it
    vipmesh exec "collabweb.$slot" -- timeout 2 wget -q -O- "http://$addr/" | grep -E '^(Hostname|Task):' | tr '\n' ' '
    echo
  done
done

say "7. The routing mesh: collabweb published on port 8080 of every node. Its tasks join the built-in"
say "   ingress network (a rolling update), and two replicas leave one node without a task"
step vipmesh service update --lb-affinity none --lb-scheduler random --publish-add 8080:80 collabweb
step vipmesh service scale collabweb=2
step vipmesh service ps collabweb
say "Its published port, and what the tasks see of the client (service inspect, Endpoint.Ports):"
vipmesh service inspect collabweb | node -e '
  const [s] = JSON.parse(require("fs").readFileSync(0, "utf8"));
  for (const p of s.Endpoint.Ports) console.log(`${p.PublishedPort}/${p.Protocol} -> ${p.TargetPort} (${p.PublishMode}): client address ${p.ClientAddress}`);'

say "From the lab's client namespace (on the underlay, not a node): node-address:8080 on every node,"
say "the node without a task too, each reaching both replicas"
for n in 1 2 3; do
  addr=192.168.100.1$n
  printf 'node%s %s:8080 ->' "$n" "$addr"
  for _ in 1 2 3 4 5 6; do
    vipmesh lab exec --name "$LAB" client -- curl -s --max-time 2 "http://$addr:8080/" | awk '/^Hostname:/ {printf " %s", $2}' || true
  done
  echo
done

say "node1's published ports (its own namespace: node address:port -> the service's VIP on the ingress network),"
say "and its ingress sandbox balancing that VIP to the tasks:"
step vipmesh lab exec --name "$LAB" node1 -- nft list map ip vipmesh-mesh published
step vipmesh lab exec --name "$LAB" node1 -- ip netns exec vm-$LAB-node1-ingress nft list map ip vipmesh be

say "Host mode: a port opened only where a task runs, straight to it; the task sees the client's own address"
step vipmesh service create --name collab-host --constraint node.hostname==node1 --publish published=9090,target=80,mode=host -- vipmesh whoami --port 80
for n in 1 2; do
  printf 'node%s:9090 -> ' "$n"
  vipmesh lab exec --name "$LAB" client -- curl -s --max-time 2 "http://192.168.100.1$n:9090/" | grep -E '^RemoteAddr:' || echo "refused (no task on node$n)"
done

say "8. An external HAProxy in the lab's client namespace, fed by haproxy-gen: per published port a frontend,"
say "   and a backend whose servers are every ready node's address:port (host-mode ports: the nodes with a task)"
hdir=/run/vipmesh/$LAB/haproxy
mkdir -p "$hdir"
step vipmesh haproxy-gen --output "$hdir/haproxy.cfg"
step vipmesh lab exec --name "$LAB" client -- haproxy -W -S "$hdir/master.sock" -f "$hdir/haproxy.cfg" -p "$hdir/haproxy.pid" -D
say "haproxy-gen --watch follows the cluster from now on: server changes over HAProxy's runtime API, new ports by a hitless reload"
vipmesh haproxy-gen --output "$hdir/haproxy.cfg" --master-socket "$hdir/master.sock" --watch 2>"$hdir/haproxy-gen.log" &
gen=$!
sed -n '/^backend be_collabweb_8080/,/^$/p' "$hdir/haproxy.cfg"
say "Requests from the client to HAProxy (127.0.0.1:8080 there) reach collabweb's tasks through every node:"
for _ in 1 2 3 4 5 6; do
  vipmesh lab exec --name "$LAB" client -- curl -s --max-time 2 "http://127.0.0.1:8080/" | awk '/^Hostname:/ {print $2}' || true
done | sort | uniq -c
say "collabweb scaled to 3: no reload needed for the mesh (every node already serves it); HAProxy's stats page shows the servers"
step vipmesh service scale collabweb=3
vipmesh lab exec --name "$LAB" client -- curl -s "http://127.0.0.1:8404/stats;csv" | awk -F, '$1 == "be_collabweb_8080" && $2 != "BACKEND" {print $1, $2, $18}'

say "The kernel state of node1's overlay (VXLAN devices; static FDB and neighbour entries of collabnet's, the last made):"
step vipmesh lab exec --name "$LAB" node1 -- ip -d link show type vxlan
step vipmesh lab exec --name "$LAB" node1 -- bridge fdb show dev "$(vipmesh lab exec --name "$LAB" node1 -- ip -o link show type vxlan | awk -F': ' '{print $2}' | cut -d@ -f1 | tail -1)"
step vipmesh lab exec --name "$LAB" node1 -- ip neigh show nud permanent

say "9. The real docker CLI: the manager serves Docker's Engine API, on the lab's docker.sock (and TLS on its"
say "   underlay address); 'vipmesh lab env' prints where, and the same lab answers docker's own commands"
step vipmesh lab env --name "$LAB"
eval "$(vipmesh lab env --name "$LAB")"
step docker service ls
step docker service inspect --format '{{json .Endpoint.VirtualIPs}}' collabweb

say "A stack from a compose file (scripts/demo-stack.yml): web published on 8088 with a health check and the alias"
say "frontend, api without a VIP (dnsrr), both on the overlay network demo_appnet"
step docker stack deploy --detach=true -c scripts/demo-stack.yml demo
for _ in $(seq 120); do
  [[ $(docker service ls --filter name=demo_ --format '{{.Replicas}}' | sort -u) == 2/2 ]] && break
  sleep 0.5
done
step docker stack services demo
step docker service ps demo_web
say "From the client, port 8088 of every node answered by web's tasks (once each node's mesh has them, a moment after they run):"
for n in 1 2 3; do
  printf 'node%s 192.168.100.1%s:8088 -> ' "$n" "$n"
  for _ in $(seq 40); do
    answer=$(vipmesh lab exec --name "$LAB" client -- curl -s --max-time 2 "http://192.168.100.1$n:8088/" | awk '/^Hostname:/ {print $2}') || true
    [[ -n $answer ]] && break
    sleep 0.5
  done
  echo "${answer:-no answer}"
done
say "Inside a web task, the embedded DNS answers the stack's names and web's alias (the VIP), and api's tasks:"
for name in web demo_web frontend api; do
  printf '%-9s %s\n' "$name" "$(vipmesh exec demo_web.1 -- dig +short "$name" | sort | tr '\n' ' ')"
done
step docker stack rm demo
step docker network ls

say "The lab stays up: try 'vipmesh service ls', 'vipmesh exec collabweb.1 -- hostname', 'vipmesh lab exec node2 -- ip -br a',"
say "'vipmesh lab exec client -- curl -s http://127.0.0.1:8404/stats' (HAProxy), and $hdir/haproxy.cfg."
say "Ctrl-C removes it."
sleep infinity
