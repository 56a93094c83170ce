# shellcheck shell=bash
# Local stand-ins for the official base images, sourced by scripts/container-test.
#
# No container registry is reachable from this machine or CI, so `docker pull`
# of debian:bookworm-slim, rust:X-slim-bookworm and redis:7-bookworm fails.
# These functions build look-alikes under the very same names, from Debian's
# archive (reachable) and this machine's Rust toolchain, so Dockerfile and
# docker-compose.yml are used unchanged. They are NOT the official images:
# close enough to prove the files work, nothing to publish.
#
# Each function does nothing when an image of that name already exists; each
# runs in a subshell (its EXIT trap removes its scratch files) and exits
# non-zero on failure.

standin_log() { printf '[stand-in] %s\n' "$*" >&2; }

standin_exists() { docker image inspect "$1" > /dev/null 2>&1; }

# debian:bookworm-slim: `debootstrap --variant=minbase bookworm`, trimmed the way
# the official slim image is (no docs, man pages or locales; apt lists removed),
# imported with the official image's CMD.
standin_debian() (
    local tag=$1 mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
    standin_exists "$tag" && exit 0
    standin_log "building $tag with debootstrap (about half a minute)"
    local root
    root=$(mktemp -d "${TMPDIR:-/tmp}/gene-api-rootfs.XXXXXX")
    # shellcheck disable=SC2064 # expand $root now
    trap "rm -rf '$root' '$root.log'" EXIT
    debootstrap --variant=minbase bookworm "$root" "$mirror" > "$root.log" 2>&1 || {
        tail -n 30 "$root.log" >&2
        exit 1
    }
    cat > "$root/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb ${mirror%/debian}/debian-security bookworm-security main
EOF
    # As in the official slim image: later package installs skip these too.
    cat > "$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
    cat > "$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/cache/apt/* \
        "$root"/var/lib/apt/lists/* "$root"/var/log/*.log "$root"/var/log/apt/*
    find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
    tar -C "$root" -c . | docker import --change 'CMD ["bash"]' \
        --message "LOCAL STAND-IN for $tag (debootstrap minbase), not the official image" \
        - "$tag" > /dev/null
)

# rust:X-slim-bookworm: the Debian stand-in plus gcc/libc6-dev (as the official
# slim image) and a copy of this machine's Rust toolchain, laid out like the
# official image (RUSTUP_HOME=/usr/local/rustup, CARGO_HOME=/usr/local/cargo,
# rustup proxies on PATH). The host toolchain must be the tag's version.
# It also trusts the CAs this machine added under /usr/local/share/ca-certificates:
# where crates.io is reached through a TLS-inspecting egress proxy (as here),
# cargo in the build would otherwise reject the proxy's certificate. An
# official image in such a network needs the same; on an open network the
# directory is empty and this changes nothing.
standin_rust() (
    local tag=$1 base=$2
    standin_exists "$tag" && exit 0
    local want=${tag#*:}
    want=${want%%-*}
    local sysroot have
    sysroot=$(realpath "$(rustc --print sysroot)")
    have=$("$sysroot/bin/rustc" --version | awk '{print $2}')
    case "$have" in
        "$want" | "$want".*) ;;
        *)
            standin_log "the stand-in for $tag needs a host Rust $want toolchain; rustc is $have"
            exit 1
            ;;
    esac
    local rustup_bin
    rustup_bin=$(realpath "$(command -v rustup)") || {
        standin_log "the stand-in for $tag copies this machine's rustup; none is on PATH"
        exit 1
    }
    standin_log "building $tag from $sysroot (Rust $have)"
    local ctx toolchain="$have-x86_64-unknown-linux-gnu"
    ctx=$(mktemp -d "${TMPDIR:-/tmp}/gene-api-rustctx.XXXXXX")
    # shellcheck disable=SC2064
    trap "rm -rf '$ctx' '$ctx.log'" EXIT
    cp "$rustup_bin" "$ctx/rustup"
    mkdir "$ctx/local-ca"
    find /usr/local/share/ca-certificates -maxdepth 1 -name '*.crt' -exec cp {} "$ctx/local-ca/" \; 2> /dev/null || true
    cat > "$ctx/Dockerfile" <<EOF
FROM $base
RUN apt-get update \\
    && apt-get install -y --no-install-recommends ca-certificates gcc libc6-dev \\
    && rm -rf /var/lib/apt/lists/*
COPY local-ca/ /usr/local/share/ca-certificates/
RUN update-ca-certificates
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo \\
    PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    RUST_VERSION=$have
COPY toolchain /usr/local/rustup/toolchains/$toolchain
COPY rustup /usr/local/cargo/bin/rustup
RUN set -eu; cd /usr/local/cargo/bin; \\
    for p in cargo rustc rustdoc rust-gdb rust-gdbgui rust-lldb cargo-clippy clippy-driver rustfmt cargo-fmt; do \\
        ln rustup "\$p"; \\
    done; \\
    printf 'version = "12"\\ndefault_toolchain = "$toolchain"\\nprofile = "minimal"\\nauto_self_update = "disable"\\n' \\
        > /usr/local/rustup/settings.toml; \\
    chmod -R a+w /usr/local/cargo; \\
    rustup --version; cargo --version; rustc --version
LABEL org.opencontainers.image.description="LOCAL STAND-IN for $tag, not the official image"
EOF
    # The context is streamed as one tar: the Dockerfile and rustup from $ctx,
    # the toolchain (without its HTML docs) renamed to toolchain/.
    local parent name
    parent=$(dirname "$sysroot")
    name=$(basename "$sysroot")
    tar -c -C "$ctx" Dockerfile rustup local-ca \
        -C "$parent" --exclude="$name/share/doc" --transform="s,^$name,toolchain," "$name" |
        docker build -t "$tag" - > "$ctx.log" 2>&1 || {
        tail -n 40 "$ctx.log" >&2
        exit 1
    }
)

# redis:7-bookworm: the Debian stand-in plus Debian's redis-server (7.0), with
# an entrypoint that does what the official one does for `redis-server ...`:
# runs as user redis (uid 999) in /data. The official image is compiled with
# protected mode off; Debian's keeps it on, so the entrypoint passes
# --protected-mode no to match.
standin_redis() (
    local tag=$1 base=$2
    standin_exists "$tag" && exit 0
    standin_log "building $tag with Debian's redis-server"
    local ctx
    ctx=$(mktemp -d "${TMPDIR:-/tmp}/gene-api-redisctx.XXXXXX")
    # shellcheck disable=SC2064
    trap "rm -rf '$ctx' '$ctx.log'" EXIT
    cat > "$ctx/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
set -e
# `docker run redis -x` or `redis /etc/redis.conf` mean redis-server with those arguments.
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
    set -- redis-server "$@"
fi
if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then
    find . \! -user redis -exec chown redis '{}' +
    exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi
if [ "$1" = redis-server ]; then
    shift
    if [ "${1%.conf}" != "${1:-}" ]; then
        conf=$1
        shift
        set -- redis-server "$conf" --protected-mode no "$@"
    else
        set -- redis-server --protected-mode no "$@"
    fi
fi
exec "$@"
EOF
    chmod 0755 "$ctx/docker-entrypoint.sh"
    cat > "$ctx/Dockerfile" <<EOF
FROM $base
RUN groupadd --system --gid 999 redis \\
    && useradd --system --uid 999 --gid redis --home-dir /var/lib/redis --shell /usr/sbin/nologin redis \\
    && apt-get update \\
    && apt-get install -y --no-install-recommends redis-server \\
    && rm -rf /var/lib/apt/lists/* \\
    && mkdir /data && chown redis:redis /data
COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
VOLUME /data
WORKDIR /data
EXPOSE 6379
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["redis-server"]
LABEL org.opencontainers.image.description="LOCAL STAND-IN for $tag, not the official image"
EOF
    docker build -t "$tag" "$ctx" > "$ctx.log" 2>&1 || {
        tail -n 40 "$ctx.log" >&2
        exit 1
    }
)
