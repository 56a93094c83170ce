#!/bin/sh
# redis-ha.sh node|sentinel: starts one Redis data node or one Sentinel of the
# HA Redis that gene-api follows through Sentinel. The same file runs in the
# Kubernetes pods (k8s/ha/, a ConfigMap made from it by kustomization.yml) and
# in the Compose containers (docker-compose.ha.yml mounts it), in the
# redis:7-bookworm image (POSIX sh, redis-cli, timeout).
#
# It only decides how a process starts; once running, the sentinels alone
# decide who is primary. The config is written fresh at every start, to a
# writable folder ($REDIS_HA_CONF_DIR), because the root filesystem is
# read-only and Redis and Sentinel both rewrite their config file.
#
# A data node starts as:
#   * the replica of the primary the sentinels name (the answer of the highest
#     config epoch, i.e. the latest failover, wins);
#   * when they name THIS node, it was the primary and has been restarted
#     before they noticed. If they know replicas of it, it waits until they
#     have promoted one and then follows it: a primary that came back on its
#     own would be followed by the replicas, which would throw away what they
#     have and copy its (possibly older, or empty) data set. If they know no
#     replica (a first start), it starts as the primary at once;
#   * when no sentinel answers (a first start, or everything restarted at
#     once): the replica of a node that says it is a primary, else the
#     primary if it is $REDIS_HA_FIRST, else the replica of that one.
# A sentinel monitors the primary the other sentinels name, else the one the
# data nodes say is primary, else $REDIS_HA_FIRST.
#
# Environment (host names as the sentinels announce them, the same spelling
# everywhere: the script compares them as strings):
#   REDIS_PASSWORD         requirepass and masterauth of every node and sentinel
#   REDISCLI_AUTH          the same, for redis-cli (this script and the probes)
#   REDIS_HA_SELF          this process' own host name
#   REDIS_HA_FIRST         the data node that is primary on a first start
#   REDIS_HA_NODES         the data nodes' host names, comma-separated
#   REDIS_HA_SENTINELS     the sentinels' host:port, comma-separated
#   REDIS_HA_MASTER_NAME   the master name the sentinels use (gene-api)
#   REDIS_HA_QUORUM        sentinels that must agree the primary is down (2)
#   REDIS_HA_DOWN_AFTER_MS no answer for this long: down (5000)
#   REDIS_HA_FAILOVER_TIMEOUT_MS  a stuck failover is retried after twice this (10000)
#   REDIS_HA_FAILOVER_WAIT_SECS   how long a restarted primary waits to be replaced (60)
#   REDIS_HA_CONF_DIR      where the config is written (/conf)
#   REDIS_HA_DATA_DIR      the data node's data folder (/data)

set -eu

mode=${1:?usage: redis-ha.sh node|sentinel}
: "${REDIS_PASSWORD:?REDIS_PASSWORD is not set}"
: "${REDIS_HA_SELF:?REDIS_HA_SELF is not set}"
: "${REDIS_HA_FIRST:?REDIS_HA_FIRST is not set}"
: "${REDIS_HA_NODES:?REDIS_HA_NODES is not set}"
: "${REDIS_HA_SENTINELS:?REDIS_HA_SENTINELS is not set}"
export REDISCLI_AUTH="${REDISCLI_AUTH:-$REDIS_PASSWORD}"
name=${REDIS_HA_MASTER_NAME:-gene-api}
conf_dir=${REDIS_HA_CONF_DIR:-/conf}
data_dir=${REDIS_HA_DATA_DIR:-/data}

log() { echo "redis-ha ($mode $REDIS_HA_SELF): $*" >&2; }

# cli HOST PORT ARGS...: one command, three seconds at most, nothing on stderr.
cli() {
    h=$1 p=$2
    shift 2
    timeout 3 redis-cli --no-auth-warning -h "$h" -p "$p" "$@" 2> /dev/null
}

# What the sentinels (but this one) say: "EPOCH HOST PORT REPLICAS" of the
# answer with the highest config epoch; nothing when none answers.
ask_sentinels() {
    for s in $(echo "$REDIS_HA_SENTINELS" | tr ',' ' '); do
        [ "${s%:*}" != "$REDIS_HA_SELF" ] || continue
        # SENTINEL MASTER answers field, value, field, value... one a line.
        cli "${s%:*}" "${s##*:}" SENTINEL MASTER "$name" |
            awk 'NR % 2 == 1 { k = $0; next }
                 k == "ip" { h = $0 } k == "port" { p = $0 }
                 k == "config-epoch" { e = $0 } k == "num-slaves" { n = $0 }
                 END { if (h != "" && p ~ /^[0-9]+$/ && e ~ /^[0-9]+$/) print e, h, p, n + 0 }' || true
    done | sort -n -r -k1,1 | head -n 1
}

# A data node (but this one) that says it is a primary; nothing when none does.
ask_nodes() {
    for n in $(echo "$REDIS_HA_NODES" | tr ',' ' '); do
        [ "$n" != "$REDIS_HA_SELF" ] || continue
        if [ "$(cli "$n" 6379 ROLE | head -n 1)" = master ]; then
            echo "$n"
            return 0
        fi
    done
}

start_node() {
    master=""
    answer=$(ask_sentinels)
    if [ -n "$answer" ]; then
        master=$(echo "$answer" | cut -d ' ' -f 2)
        replicas=$(echo "$answer" | cut -d ' ' -f 4)
        if [ "$master" = "$REDIS_HA_SELF" ] && [ "$replicas" -gt 0 ]; then
            wait_secs=${REDIS_HA_FAILOVER_WAIT_SECS:-60}
            log "the sentinels still name this node primary, with $replicas replica(s): waiting up to $wait_secs s for them to promote one"
            deadline=$(($(date +%s) + wait_secs))
            while [ "$master" = "$REDIS_HA_SELF" ]; do
                if [ "$(date +%s)" -ge "$deadline" ]; then
                    # Better serve the data it has than nothing; but an empty
                    # node as primary would wipe its replicas when they follow.
                    if [ -d "$data_dir/appendonlydir" ]; then
                        log "no failover within $wait_secs s: starting as primary on the data it has"
                        break
                    fi
                    log "no failover within $wait_secs s, and no data here to be primary with: still waiting"
                    deadline=$(($(date +%s) + wait_secs))
                fi
                sleep 1
                answer=$(ask_sentinels)
                [ -z "$answer" ] || master=$(echo "$answer" | cut -d ' ' -f 2)
            done
        fi
    else
        master=$(ask_nodes)
        [ -n "$master" ] || master=$REDIS_HA_FIRST
        log "no sentinel answers; primary: $master"
    fi
    # The password lives only in this file (in a memory-backed folder), not
    # on a command line that `ps` shows.
    cat > "$conf_dir/redis.conf" << EOF
port 6379
dir $data_dir
appendonly yes
requirepass "$REDIS_PASSWORD"
masterauth "$REDIS_PASSWORD"
# Announced by name: a pod's IP changes when it is recreated, its name does not.
replica-announce-ip $REDIS_HA_SELF
replica-announce-port 6379
# A primary cut off from every replica stops taking writes after 10 s, so an
# isolated old primary cannot go on accepting what the failover will discard.
min-replicas-to-write 1
min-replicas-max-lag 10
EOF
    if [ "$master" = "$REDIS_HA_SELF" ]; then
        log "starting as primary"
    else
        log "starting as replica of $master"
        echo "replicaof $master 6379" >> "$conf_dir/redis.conf"
    fi
    exec redis-server "$conf_dir/redis.conf"
}

start_sentinel() {
    answer=$(ask_sentinels)
    if [ -n "$answer" ]; then
        master=$(echo "$answer" | cut -d ' ' -f 2)
        log "the other sentinels name $master primary (config epoch $(echo "$answer" | cut -d ' ' -f 1))"
    else
        master=$(ask_nodes)
        [ -n "$master" ] || master=$REDIS_HA_FIRST
        log "no other sentinel answers; monitoring $master"
    fi
    # resolve-hostnames before `monitor`, which names a host.
    cat > "$conf_dir/sentinel.conf" << EOF
port 26379
dir $conf_dir
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip $REDIS_HA_SELF
sentinel announce-port 26379
# The sentinels take the data nodes' password: a sentinel anyone could reach
# could be told to name any server as primary, and gene-api would then send
# it its jobs and its Redis password.
requirepass "$REDIS_PASSWORD"
sentinel sentinel-pass "$REDIS_PASSWORD"
sentinel monitor $name $master 6379 ${REDIS_HA_QUORUM:-2}
sentinel auth-pass $name "$REDIS_PASSWORD"
sentinel down-after-milliseconds $name ${REDIS_HA_DOWN_AFTER_MS:-5000}
sentinel failover-timeout $name ${REDIS_HA_FAILOVER_TIMEOUT_MS:-10000}
sentinel parallel-syncs $name 1
EOF
    exec redis-server "$conf_dir/sentinel.conf" --sentinel
}

case "$mode" in
    node) start_node ;;
    sentinel) start_sentinel ;;
    *)
        echo "usage: redis-ha.sh node|sentinel" >&2
        exit 2
        ;;
esac
