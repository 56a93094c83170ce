# shellcheck shell=bash
# Runs INSIDE the hermetic build container (scripts/lib/k8s-cluster.sh,
# k8s_build): a bare debian:bookworm-slim stand-in plus exactly the packages
# scripts/lib/needs declares for step `k8s-build`, nothing from the host. A
# build dependency missing from that list fails here on every machine alike,
# not only on a new one (as rsync once did).
#
# Environment (set by k8s_build): K8S_DEB_VERSION, BUILD_PACKAGES (space
# separated), WHAT (the cmd/... targets), COMPONENTS (the binaries to copy).
# Output: the binaries and `pause` in /out.
set -euo pipefail

log() { printf '[k8s-build] %s\n' "$*"; }

# Only the build packages: no recommends, so nothing undeclared comes along.
log "installing the declared build packages: $BUILD_PACKAGES"
cat > /etc/apt/sources.list.d/gene-api-src.list << 'EOF'
deb-src http://deb.debian.org/debian bookworm main
deb-src http://deb.debian.org/debian-security bookworm-security main
EOF
# shellcheck disable=SC2086 # a list of package names
{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $BUILD_PACKAGES; } \
    > /tmp/apt.log 2>&1 || { tail -n 30 /tmp/apt.log >&2; exit 1; }

mkdir -p /build && cd /build
log "fetching Debian's source package kubernetes=$K8S_DEB_VERSION"
apt-get source --download-only "kubernetes=$K8S_DEB_VERSION" > fetch.log 2>&1 || { tail -n 20 fetch.log >&2; exit 1; }
# dpkg-source applies Debian's patches (a CVE fix among them).
dpkg-source -x "kubernetes_${K8S_DEB_VERSION}.dsc" tree > unpack.log 2>&1 || { tail -n 20 unpack.log >&2; exit 1; }
cd tree

# No negative oom_score_adj anywhere: root on these machines lacks
# CAP_SYS_RESOURCE, and runc fails on one (see k8s-cluster.sh, "Pitfalls").
sed -i 's/^\(\s*defaultSandboxOOMAdj int = \)-998$/\10/' pkg/kubelet/dockershim/docker_sandbox.go
sed -i 's/^\(\s*guaranteedOOMScoreAdj int = \)-997$/\10/' pkg/kubelet/qos/policy.go
if ! grep -q 'defaultSandboxOOMAdj int = 0$' pkg/kubelet/dockershim/docker_sandbox.go ||
    ! grep -q 'guaranteedOOMScoreAdj int = 0$' pkg/kubelet/qos/policy.go; then
    echo "the oom_score_adj edits did not apply to the source tree" >&2
    exit 1
fi

# GOPROXY=off: everything comes from the tree's vendor/ (`go build
# -mod=vendor` alone does not work on this tree; its own make does). nice: the
# machine is shared with other work.
log "make WHAT=\"$WHAT\" (about 7 min on 2 cores)"
HOME=/build/home GOPATH=/build/gopath GOCACHE=/build/gocache GOPROXY=off GOFLAGS='' CGO_ENABLED=0 \
    nice -n 10 make WHAT="$WHAT" > /build/make.log 2>&1 || { tail -n 40 /build/make.log >&2; exit 1; }
for c in $COMPONENTS; do
    cp "_output/bin/$c" /out/ || { echo "make built no $c" >&2; exit 1; }
done
# The pod sandbox's "pause" process, from the same tree (the stand-in image
# k8s.gcr.io/pause:3.2 is made of it).
gcc -Os -static -o /out/pause build/pause/linux/pause.c
log "built: $COMPONENTS pause"
