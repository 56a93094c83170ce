# shellcheck shell=bash
# scripts/lib/k8s-cluster.sh: a real single-node Kubernetes 1.20 cluster, built
# offline and run inside a network namespace with NO uplink. Sourced by
# scripts/k8s-test; nothing here is a mock: it is the upstream control plane
# (kube-apiserver, controller-manager, scheduler, kubelet, kube-proxy) with etcd
# and Docker, as a user's kubeadm/kind node would run them.
#
# Why 1.20: no registry reachable here ships a newer control plane, but Debian
# bookworm's SOURCE package `kubernetes` is the whole v1.20.2 tree including
# vendor/, so it builds without network (GOPROXY=off) with Debian's Go 1.19.
#
# =============================== STAND-INS ==================================
# A bare control plane lacks two things every real cluster has; this file
# provides them as clearly named stand-ins, so the manifests apply UNCHANGED:
#   * cluster DNS       <- dnsmasq (Debian) on the node, answering
#                          <svc>.<ns>.svc.cluster.local from the Services the API
#                          server lists (refreshed every second), with the
#                          kubelet's --cluster-dns/--cluster-domain pointing at it,
#                          so `REDIS_IP=redis` resolves as it would with CoreDNS;
#                          for a headless Service, as CoreDNS does, its name is
#                          every ready endpoint and <hostname>.<svc>.<ns>.svc...
#                          each StatefulSet pod (k8s/ha/ names pods so).
#   * a volume provisioner <- hostPath PersistentVolumes (with a default
#                          StorageClass that names no provisioner), created before
#                          the manifests, each bound ahead to the claim it is for,
#                          whose directories are world-writable.
# ============================================================================
#
# Pitfalls of this machine, and their fixes (each one met for real):
#   * root lacks CAP_SYS_RESOURCE, so runc fails with "can't get final child's
#     PID from pipe: EOF" on a negative oom_score_adj: the build sets the
#     sandbox and Guaranteed-pod adjustments to 0, and kubelet/kube-proxy run
#     with --oom-score-adj=0.
#   * `ip netns exec` remounts /sys, hiding the cgroups from the kubelet: every
#     process enters the namespace with `nsenter --net=/run/netns/NAME` instead.
#   * the kernel has no `dummy` link type: a bridge without ports is the node's
#     interface (it still owns the node IP, and that is all it must do).
#
# Everything started is recorded (pids, netns, mounts, cgroups, containers) and
# k8s_cluster_down removes it, pass or fail.

K8S_DEB_VERSION="1.20.5+really1.20.2-1.1+deb12u1"
K8S_VERSION="v1.20.2"
K8S_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib/common.sh
. "$K8S_LIB_DIR/common.sh"
# What the hermetic build installs in its container (scripts/lib/needs).
K8S_BUILD_PACKAGES=$(needs_list k8s-build build | tr '\n' ' ')
K8S_BUILD_PACKAGES=${K8S_BUILD_PACKAGES% }
# Bump the suffix whenever the build (scripts/lib/k8s-build-in-container.sh)
# changes, so a cache built by an older recipe is not reused; the build
# packages are part of the name.
K8S_BUILD_RECIPE="hermetic-1-$(printf '%s' "$K8S_BUILD_PACKAGES" | sha256sum | cut -c1-8)"
K8S_CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/gene-api"
K8S_BIN="$K8S_CACHE_ROOT/kubernetes-$K8S_DEB_VERSION-$K8S_BUILD_RECIPE/bin"
K8S_COMPONENTS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)

# The network of the cluster. All of it lives in the namespace K8S_NETNS; the
# root namespace gets no route into it and it gets no route out.
K8S_NODE_IP="10.213.0.1"
K8S_POD_CIDR="10.214.0.0/16"
K8S_SERVICE_CIDR="10.215.0.0/16"
K8S_APISERVER_SVC_IP="10.215.0.1"
K8S_DNS_IP="$K8S_NODE_IP"
K8S_DOMAIN="cluster.local"

k8s_log() { printf '\n==> %s\n' "$*"; }
k8s_ok() { printf '    ok: %s\n' "$*"; }
k8s_die() {
    printf '\n!!! K8S CLUSTER: %s\n' "$*" >&2
    exit 1
}

# --- packages -----------------------------------------------------------------

# The host's packages for running the cluster: scripts/lib/needs, step `k8s`.
# kubectl: the machine's (a new machine has one) is fine for a 1.20 server in
# the commands docs/kubernetes.md uses; a machine without one gets the 1.20 kubectl
# built from the same tree (k8s_build).
k8s_install_packages() {
    needs k8s || k8s_die "could not install what step 'k8s' needs (scripts/lib/needs)"
}

# --- the build ----------------------------------------------------------------

# Builds the five components (and kubectl if the machine has none) from
# Debian's source package into $K8S_BIN, unless they are cached there.
#
# Hermetic: the build runs in a container FROM the debian:bookworm-slim
# stand-in (scripts/lib/standins.sh; the caller builds it and starts the
# engine) with only the packages scripts/lib/needs declares for step
# `k8s-build` (scripts/lib/k8s-build-in-container.sh). Nothing of the host's
# takes part, so a build tool missing from that list (rsync, called by the
# tree's own hack/ scripts) fails on every machine, not only on a new one.
K8S_BUILD_CONTAINER="gene-api-k8s-build-$$"
k8s_build() {
    local want=("${K8S_COMPONENTS[@]}") c absent=0
    command -v kubectl > /dev/null || want+=(kubectl)
    for c in "${want[@]}" pause; do [ -x "$K8S_BIN/$c" ] || absent=1; done
    if [ "$absent" = 0 ]; then
        k8s_ok "Kubernetes $K8S_VERSION binaries cached in $K8S_BIN"
        return 0
    fi
    local base=${K8S_BUILD_IMAGE:-debian:bookworm-slim}
    docker image inspect "$base" > /dev/null 2>&1 || k8s_die "no $base image for the hermetic build (build the stand-ins first)"
    k8s_log "building Kubernetes $K8S_VERSION from Debian's source package kubernetes=$K8S_DEB_VERSION, in a $base container with only: $K8S_BUILD_PACKAGES (about 9 min on 2 cores)"
    local t=$SECONDS targets=() out="$K8S_BIN.tmp.$$"
    for c in "${want[@]}"; do targets+=("cmd/$c"); done
    rm -rf "$out" && mkdir -p "$out"
    # Named, so that the test's cleanup can remove it when interrupted.
    docker run --rm --name "$K8S_BUILD_CONTAINER" \
        -v "$K8S_LIB_DIR/k8s-build-in-container.sh:/k8s-build.sh:ro" -v "$out:/out" \
        -e K8S_DEB_VERSION="$K8S_DEB_VERSION" -e BUILD_PACKAGES="$K8S_BUILD_PACKAGES" \
        -e WHAT="${targets[*]}" -e COMPONENTS="${want[*]}" \
        "$base" bash /k8s-build.sh > "$K8S_WORK/k8s-build.log" 2>&1 ||
        { tail -n 50 "$K8S_WORK/k8s-build.log" >&2; rm -rf "$out"; k8s_die "the hermetic Kubernetes build failed (log above)"; }
    for c in "${want[@]}" pause; do [ -x "$out/$c" ] || k8s_die "the build left no $c"; done
    # Keep kubectl too if it was built; then swap the folder in atomically.
    if [ -d "$K8S_BIN" ]; then cp -n "$K8S_BIN"/* "$out/" 2> /dev/null || true; fi
    rm -rf "$K8S_BIN" && mkdir -p "$(dirname "$K8S_BIN")" && mv "$out" "$K8S_BIN"
    k8s_ok "built in $((SECONDS - t)) s: $(cd "$K8S_BIN" && echo *)"
}

# --- bring-up ------------------------------------------------------------------
# State of a running cluster; k8s_cluster_down undoes exactly what is recorded.
# (K8S_WORK, K8S_NETNS and NODE_DOCKER_SOCK are taken from the environment
# when set: scripts/k8s-test runs the steps of docs/kubernetes.md in a
# second process.)
K8S_PIDS=()                           # every daemon started, in start order
K8S_NETNS=${K8S_NETNS:-}              # the network namespace, once created
K8S_CGROUP_ROOT=""                    # the kubelet's --cgroup-root, once created
K8S_SYSCTLS=()                        # "name=old value" of global sysctls the kubelet changes
K8S_WORK=${K8S_WORK:-}                # certs, etcd, kubelet and docker state, logs
NODE_DOCKER_SOCK=${NODE_DOCKER_SOCK:-}
K8S_MASQ_ALL=""

# Runs a command inside the cluster's network namespace. nsenter, not
# `ip netns exec`: the latter remounts /sys, which hides the cgroups from the
# kubelet (see "Pitfalls" above).
in_netns() { nsenter --net="/run/netns/$K8S_NETNS" -- "$@"; }

# Starts a daemon inside the namespace, its output in $K8S_WORK/logs/NAME.log.
k8s_daemon() {
    local name=$1
    shift
    # nsenter (no --fork) execs the command, so $! is the daemon's own pid.
    nsenter --net="/run/netns/$K8S_NETNS" -- "$@" > "$K8S_WORK/logs/$name.log" 2>&1 &
    K8S_PIDS+=("$!")
    printf '%s %s\n' "$!" "$name" >> "$K8S_WORK/pids"
}

# k8s_wait SECS WHAT CMD...: retries CMD every half second.
k8s_wait() {
    local secs=$1 what=$2 deadline
    shift 2
    deadline=$((SECONDS + secs))
    until "$@" > /dev/null 2>&1; do
        [ $SECONDS -lt "$deadline" ] || return 1
        sleep 0.5
    done
    k8s_ok "$what"
}

k8s_certs() {
    local pki="$K8S_WORK/pki"
    mkdir -p "$pki"
    cd "$pki" || k8s_die "no $pki"
    {
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj "/CN=gene-api-test-ca"
        cat > apiserver.ext << EOF2
subjectAltName=IP:$K8S_NODE_IP,IP:$K8S_APISERVER_SVC_IP,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$K8S_DOMAIN
extendedKeyUsage=serverAuth,clientAuth
EOF2
        openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver"
        openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out apiserver.crt -days 2 -extfile apiserver.ext
        # One client certificate for every component and for kubectl: the
        # system:masters group may do anything, which is all a throwaway
        # single-node cluster needs.
        printf 'extendedKeyUsage=clientAuth\n' > client.ext
        openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr -subj "/O=system:masters/CN=admin"
        openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out admin.crt -days 2 -extfile client.ext
        openssl genrsa -out sa.key 2048
        openssl rsa -in sa.key -pubout -out sa.pub
    } > "$K8S_WORK/logs/openssl.log" 2>&1 || { cat "$K8S_WORK/logs/openssl.log" >&2; k8s_die "openssl failed"; }
    cd - > /dev/null || true
    KUBECONFIG="$K8S_WORK/kubeconfig"
    export KUBECONFIG
    cat > "$KUBECONFIG" << EOF2
apiVersion: v1
kind: Config
clusters:
  - name: gene-api-test
    cluster:
      server: https://$K8S_NODE_IP:6443
      certificate-authority: $pki/ca.crt
users:
  - name: admin
    user:
      client-certificate: $pki/admin.crt
      client-key: $pki/admin.key
contexts:
  - name: gene-api-test
    context: {cluster: gene-api-test, user: admin, namespace: default}
current-context: gene-api-test
EOF2
}

# The namespace: a bridge without ports carries the node IP (no `dummy` link
# type on this kernel), no default route, no veth to the outside. Only the
# Service range is routed, to the node itself, so that kube-proxy's DNAT
# rules see the packets; anything else is unreachable.
k8s_netns() {
    K8S_NETNS="gene-api-k8s-$$"
    ip netns add "$K8S_NETNS" || k8s_die "ip netns add $K8S_NETNS failed"
    in_netns ip link set lo up
    in_netns ip link add k8snode type bridge
    in_netns ip addr add "$K8S_NODE_IP/32" dev k8snode
    in_netns ip link set k8snode up
    in_netns ip route add "$K8S_SERVICE_CIDR" dev k8snode src "$K8S_NODE_IP"
    in_netns sysctl -qw net.ipv4.ip_forward=1
    # Pod -> Service -> pod on the same bridge needs the bridged reply to pass
    # through iptables (br_netfilter); where that sysctl is not per-namespace,
    # kube-proxy masquerades all Service traffic instead.
    K8S_MASQ_ALL=""
    in_netns sysctl -qw net.bridge.bridge-nf-call-iptables=1 2> /dev/null || K8S_MASQ_ALL=--masquerade-all
    k8s_ok "network namespace $K8S_NETNS (node IP $K8S_NODE_IP, no uplink)"
}

# The node's own Docker engine (the 1.20 kubelet drives it through dockershim),
# separate from the machine's: its own data root, socket and containerd, inside
# the namespace, with no bridge and no iptables rules of its own.
k8s_node_docker() {
    local d="$K8S_WORK/docker"
    mkdir -p "$d/data" "$d/exec"
    NODE_DOCKER_SOCK="$d/docker.sock"
    k8s_daemon node-dockerd dockerd --data-root "$d/data" --exec-root "$d/exec" --pidfile "$d/dockerd.pid" \
        -H "unix://$NODE_DOCKER_SOCK" --bridge=none --iptables=false --ip-masq=false --ip-forward=false \
        --exec-opt native.cgroupdriver=cgroupfs --cgroup-parent="$K8S_CGROUP_ROOT/docker" \
        --storage-driver=overlay2 --log-driver=json-file
    k8s_wait 60 "node's dockerd (unix://$NODE_DOCKER_SOCK)" docker -H "unix://$NODE_DOCKER_SOCK" info ||
        { tail -n 30 "$K8S_WORK/logs/node-dockerd.log" >&2; k8s_die "the node's dockerd did not start"; }
}
node_docker() { docker -H "unix://$NODE_DOCKER_SOCK" "$@"; }

# STAND-IN image: the pod sandbox image the kubelet expects, made of the
# pause.c of the Kubernetes tree (what the real image contains too).
k8s_pause_image() {
    local t="$K8S_WORK/pause-rootfs"
    mkdir -p "$t" && cp "$K8S_BIN/pause" "$t/pause"
    tar -C "$t" -c pause | node_docker import --change 'ENTRYPOINT ["/pause"]' - k8s.gcr.io/pause:3.2 > /dev/null ||
        k8s_die "could not import the pause stand-in image"
}

# A cgroup of the cluster's own in every v1 hierarchy (kubelet --cgroup-root),
# so that everything the pods create sits under it and is removed at the end.
k8s_cgroups() {
    local h
    K8S_CGROUP_ROOT="/gene-api-k8s-$$"
    for h in /sys/fs/cgroup/*/; do
        [ -e "$h/cgroup.procs" ] || continue
        case "$h" in */unified/) continue ;; esac
        mkdir -p "$h$K8S_CGROUP_ROOT"
        # A new cpuset cgroup starts empty; tasks can only join once it has
        # the parent's CPUs and memory nodes.
        if [ -e "$h/cpuset.cpus" ]; then
            cat "$h/cpuset.cpus" > "$h$K8S_CGROUP_ROOT/cpuset.cpus"
            cat "$h/cpuset.mems" > "$h$K8S_CGROUP_ROOT/cpuset.mems"
        fi
    done
}

# The kubelet sets these machine-wide sysctls at start; they are put back.
k8s_save_sysctls() {
    local s
    for s in vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops; do
        K8S_SYSCTLS+=("$s=$(sysctl -n "$s")")
    done
}

k8s_control_plane() {
    local pki="$K8S_WORK/pki"
    mkdir -p "$K8S_WORK/etcd"
    k8s_daemon etcd etcd --data-dir "$K8S_WORK/etcd" --name node \
        --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
        --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
        --initial-cluster node=http://127.0.0.1:2380
    k8s_wait 60 "etcd" in_netns curl -sf http://127.0.0.1:2379/health ||
        { tail -n 30 "$K8S_WORK/logs/etcd.log" >&2; k8s_die "etcd did not start"; }
    k8s_daemon kube-apiserver "$K8S_BIN/kube-apiserver" --etcd-servers=http://127.0.0.1:2379 \
        --advertise-address="$K8S_NODE_IP" --bind-address=0.0.0.0 --secure-port=6443 --insecure-port=0 \
        --service-cluster-ip-range="$K8S_SERVICE_CIDR" \
        --client-ca-file="$pki/ca.crt" --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
        --kubelet-client-certificate="$pki/admin.crt" --kubelet-client-key="$pki/admin.key" \
        --kubelet-preferred-address-types=InternalIP \
        --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
        --service-account-issuer="https://kubernetes.default.svc.$K8S_DOMAIN" \
        --authorization-mode=RBAC --allow-privileged=true --v=1
    k8s_wait 90 "kube-apiserver" in_netns kubectl get --raw /readyz ||
        { tail -n 30 "$K8S_WORK/logs/kube-apiserver.log" >&2; k8s_die "kube-apiserver did not become ready"; }
    k8s_daemon kube-controller-manager "$K8S_BIN/kube-controller-manager" --kubeconfig="$KUBECONFIG" \
        --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
        --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" \
        --leader-elect=false --bind-address=127.0.0.1 --port=0 --v=1
    k8s_daemon kube-scheduler "$K8S_BIN/kube-scheduler" --kubeconfig="$KUBECONFIG" \
        --leader-elect=false --bind-address=127.0.0.1 --port=0 --v=1
}

k8s_node() {
    local n="$K8S_WORK/node"
    mkdir -p "$n/net.d" "$n/cni-cache" "$n/ipam" "$n/kubelet" "$n/plugins"
    : > "$n/resolv.conf"  # no search domains or servers of the machine leak into pods
    # bridge + host-local: the pods' network, inside the namespace. No ipMasq:
    # there is nowhere to masquerade to.
    cat > "$n/net.d/10-gene-api.conflist" << EOF2
{
  "cniVersion": "0.4.0",
  "name": "gene-api-k8s-$$",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": "$n/ipam",
              "ranges": [[{"subnet": "${K8S_POD_CIDR%.0.0/16}.0.0/24"}]],
              "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF2
    k8s_save_sysctls
    # The kubelet writes pod logs to /var/log/pods and /var/log/containers,
    # fixed paths: what is new there at the end is this run's, and removed.
    mkdir -p /var/log/pods /var/log/containers
    ls -A /var/log/pods /var/log/containers > "$K8S_WORK/varlog.before" 2> /dev/null
    k8s_daemon kubelet "$K8S_BIN/kubelet" --kubeconfig="$KUBECONFIG" \
        --container-runtime=docker --docker-endpoint="unix://$NODE_DOCKER_SOCK" \
        --pod-infra-container-image=k8s.gcr.io/pause:3.2 \
        --network-plugin=cni --cni-conf-dir="$n/net.d" --cni-bin-dir=/usr/lib/cni --cni-cache-dir="$n/cni-cache" \
        --root-dir="$n/kubelet" --cert-dir="$n/kubelet/pki" --volume-plugin-dir="$n/plugins" \
        --experimental-dockershim-root-directory="$n/dockershim" \
        --hostname-override=gene-api-node --node-ip="$K8S_NODE_IP" \
        --cluster-dns="$K8S_DNS_IP" --cluster-domain="$K8S_DOMAIN" --resolv-conf="$n/resolv.conf" \
        --cgroup-driver=cgroupfs --cgroup-root="$K8S_CGROUP_ROOT" --oom-score-adj=0 --fail-swap-on=false \
        --eviction-hard='memory.available<100Mi,nodefs.available<1%,imagefs.available<1%' \
        --image-gc-high-threshold=100 --image-gc-low-threshold=99 \
        --read-only-port=0 --v=1
    k8s_daemon kube-proxy "$K8S_BIN/kube-proxy" --kubeconfig="$KUBECONFIG" \
        --hostname-override=gene-api-node --bind-address="$K8S_NODE_IP" --cluster-cidr="$K8S_POD_CIDR" \
        --proxy-mode=iptables --oom-score-adj=0 \
        --conntrack-max-per-core=0 --conntrack-min=0 \
        --conntrack-tcp-timeout-established=0 --conntrack-tcp-timeout-close-wait=0 \
        --metrics-bind-address=127.0.0.1:10249 --healthz-bind-address=127.0.0.1:10256 ${K8S_MASQ_ALL:+"$K8S_MASQ_ALL"} --v=1
    k8s_wait 120 "node gene-api-node Ready" in_netns kubectl wait --for=condition=Ready node/gene-api-node --timeout=5s ||
        { tail -n 40 "$K8S_WORK/logs/kubelet.log" >&2; k8s_die "the node did not become Ready"; }
}

# STAND-IN cluster DNS: dnsmasq answers <svc>.<ns>.svc.cluster.local (and
# nothing else in the cluster domain) from a hosts file that a loop rewrites
# from the Services and Endpoints every second; dnsmasq re-reads the folder on
# change (--hostsdir) and forgets what a changed file no longer says. As
# CoreDNS: a Service with a ClusterIP is that IP; a headless one is the IPs of
# its ready endpoints, and each endpoint with a hostname (a StatefulSet's pod,
# whose subdomain is the Service) is also <hostname>.<svc>.<ns>.svc.cluster.local.
k8s_dns() {
    local d="$K8S_WORK/dns"
    mkdir -p "$d/hosts"
    chmod 755 "$d" "$d/hosts"
    k8s_daemon dnsmasq dnsmasq --keep-in-foreground --no-resolv --no-hosts --bind-interfaces \
        --listen-address="$K8S_DNS_IP" --hostsdir="$d/hosts" --local="/$K8S_DOMAIN/" --domain-needed \
        --pid-file= --log-facility=-
    # One list call a second for both kinds; jq turns it into hosts lines.
    cat > "$d/hosts.jq" << 'JQ'
(.items | map(select(.kind == "Service")) | map({key: "\(.metadata.namespace)/\(.metadata.name)", value: .spec.clusterIP})
    | from_entries) as $ip
| .items[]
| if .kind == "Service" then
    select(.spec.clusterIP | test("^[0-9.]+$")) | "\(.spec.clusterIP) \(.metadata.name).\(.metadata.namespace).svc.\($domain)"
  else
    .metadata as $m | select($ip["\($m.namespace)/\($m.name)"] == "None") | (.subsets // [])[] | (.addresses // [])[]
    | "\(.ip) \($m.name).\($m.namespace).svc.\($domain)",
      (select(.hostname) | "\(.ip) \(.hostname).\($m.name).\($m.namespace).svc.\($domain)")
  end
JQ
    # shellcheck disable=SC2016 # expanded by the inner bash
    k8s_daemon dns-sync bash -c '
        set -o pipefail # a failed list keeps the last hosts file
        while :; do
            kubectl get services,endpoints --all-namespaces -o json 2> /dev/null |
                jq -r --arg domain "$1" -f "$2/hosts.jq" > "$2/services.new" 2> /dev/null &&
                { cmp -s "$2/services.new" "$2/hosts/services" || cp "$2/services.new" "$2/hosts/services"; }
            sleep 1
        done' dns-sync "$K8S_DOMAIN" "$d"
    k8s_wait 30 "cluster DNS stand-in: kubernetes.default.svc.$K8S_DOMAIN resolves" \
        k8s_dns_query "kubernetes.default.svc.$K8S_DOMAIN" ||
        { tail -n 20 "$K8S_WORK/logs/dnsmasq.log" >&2; k8s_die "the DNS stand-in does not answer"; }
}

# A DNS query to the stand-in, without dig/nslookup on the machine.
k8s_dns_query() {
    in_netns python3 - "$1" "$K8S_DNS_IP" << 'PY'
import socket, struct, sys
name, server = sys.argv[1], sys.argv[2]
q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
s.sendto(q, (server, 53)); r = s.recv(512)
if struct.unpack(">H", r[6:8])[0] < 1: sys.exit(1)
print(socket.inet_ntoa(r[-4:]))
PY
}

# STAND-IN volume provisioner: hostPath PersistentVolumes (and a default
# StorageClass naming no provisioner, so the claims bind to them), as a
# provisioner would create for each claim: each is bound ahead to its claim
# (claimRef), so redis-data never takes a volume meant for the HA Redis.
# World-writable: a volume must be writable for the pod's user, as a
# provisioned disk formatted for it would be. The claims are in
# $K8S_PV_NAMESPACE: redis-data (k8s/redis-pvc.yml) and data-redis-ha-0..2
# (the volumeClaimTemplates of k8s/ha/redis-statefulset.yml).
K8S_PV_NAMESPACE=${K8S_PV_NAMESPACE:-gene-api}
k8s_volume() {
    local pv=$1 claim=$2 v="$K8S_WORK/volumes/$3"
    mkdir -p "$v" && chmod 1777 "$v"
    cat << EOF2
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: $pv
spec:
  storageClassName: standin-hostpath
  capacity: {storage: 2Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  claimRef: {namespace: $K8S_PV_NAMESPACE, name: $claim}
  hostPath: {path: $v, type: Directory}
EOF2
}
k8s_volumes() {
    local i
    {
        cat << EOF2
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standin-hostpath
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: Immediate
EOF2
        k8s_volume standin-redis-data redis-data redis-data
        for i in 0 1 2; do k8s_volume "standin-redis-ha-$i" "data-redis-ha-$i" "redis-ha-$i"; done
    } | in_netns kubectl apply -f - > /dev/null || k8s_die "could not create the stand-in PersistentVolumes"
    k8s_ok "stand-in PersistentVolumes standin-redis-data, standin-redis-ha-0..2 (hostPath under $K8S_WORK/volumes, mode 1777)"
}

# Brings the whole cluster up; K8S_WORK must be set (an empty folder).
k8s_cluster_up() {
    mkdir -p "$K8S_WORK/logs"
    : > "$K8S_WORK/pids"
    k8s_log "bringing up a single-node Kubernetes $K8S_VERSION cluster in a network namespace without uplink"
    local t=$SECONDS
    k8s_certs
    k8s_netns
    k8s_cgroups
    k8s_node_docker
    k8s_pause_image
    k8s_control_plane
    k8s_node
    k8s_dns
    k8s_volumes
    k8s_ok "cluster up in $((SECONDS - t)) s (logs: $K8S_WORK/logs)"
}

# --- tear-down -------------------------------------------------------------------

# Stops a pid and waits for it (TERM, then KILL after SECS).
k8s_stop_pid() {
    local pid=$1 secs=${2:-20} i
    kill -0 "$pid" 2> /dev/null || return 0
    kill "$pid" 2> /dev/null
    for ((i = 0; i < secs * 5; i++)); do
        kill -0 "$pid" 2> /dev/null || return 0
        sleep 0.2
    done
    kill -9 "$pid" 2> /dev/null
    wait "$pid" 2> /dev/null
}

# Undoes everything k8s_cluster_up recorded; safe to call at any point and twice.
k8s_cluster_down() {
    set +e
    local i pid h s
    # The pods first, through the node's Docker (the kubelet would restart them).
    if [ -n "$NODE_DOCKER_SOCK" ] && [ -S "$NODE_DOCKER_SOCK" ]; then
        for i in $(seq $((${#K8S_PIDS[@]} - 1)) -1 0); do
            case "$(sed -n "$((i + 1))p" "$K8S_WORK/pids" | cut -d' ' -f2)" in
                kubelet | kube-proxy | kube-controller-manager | kube-scheduler | dns-sync) k8s_stop_pid "${K8S_PIDS[$i]}" 10 ;;
            esac
        done
        local ids
        ids=$(node_docker ps -aq)
        # shellcheck disable=SC2086 # one id per word
        [ -z "$ids" ] || node_docker rm -f $ids > /dev/null 2>&1
        # Sandboxes' network namespaces are gone with their containers.
    fi
    # Then every daemon, newest first (in_netns' nsenter execs, so the pid is the daemon's).
    for i in $(seq $((${#K8S_PIDS[@]} - 1)) -1 0); do
        pid=${K8S_PIDS[$i]}
        k8s_stop_pid "$pid" 20
    done
    K8S_PIDS=()
    # Mounts left under the work folder (the node dockerd's overlays, the
    # kubelet's pod volumes), deepest first.
    if [ -n "$K8S_WORK" ]; then
        grep -F " $K8S_WORK/" /proc/self/mounts | awk '{print $2}' | sort -r | while read -r m; do
            umount -l "$m" 2> /dev/null
        done
    fi
    if [ -n "$K8S_CGROUP_ROOT" ]; then
        for h in /sys/fs/cgroup/*/; do
            [ -d "$h$K8S_CGROUP_ROOT" ] || continue
            # Deepest first; a cgroup is removed with rmdir once it has no tasks.
            find "$h$K8S_CGROUP_ROOT" -depth -type d -exec rmdir {} \; 2> /dev/null
        done
        K8S_CGROUP_ROOT=""
    fi
    for s in "${K8S_SYSCTLS[@]}"; do sysctl -qw "$s" 2> /dev/null; done
    if [ -n "$K8S_WORK" ] && [ -f "$K8S_WORK/varlog.before" ]; then
        for h in /var/log/pods /var/log/containers; do
            for s in "$h"/*; do
                [ -e "$s" ] || [ -L "$s" ] || continue
                grep -qxF "${s##*/}" "$K8S_WORK/varlog.before" || rm -rf "$s"
            done
        done
        rm -f "$K8S_WORK/varlog.before"
    fi
    K8S_SYSCTLS=()
    if [ -n "$K8S_NETNS" ]; then
        ip netns del "$K8S_NETNS" 2> /dev/null
        K8S_NETNS=""
    fi
}

# Cleanup check: what of this run is still there (printed; empty means clean).
k8s_leftovers() {
    local h
    [ -z "$1" ] || ! ip netns list | grep -qw "$1" || echo "netns $1"
    [ -z "$2" ] || ! grep -qF " $2/" /proc/self/mounts || echo "mounts under $2"
    for h in /sys/fs/cgroup/*/; do
        [ -z "$3" ] || [ ! -d "$h$3" ] || echo "cgroup $h$3"
    done
    while read -r pid name; do
        if kill -0 "$pid" 2> /dev/null; then echo "process $name ($pid)"; fi
    done < "${2:-/dev/null}/pids"
}
