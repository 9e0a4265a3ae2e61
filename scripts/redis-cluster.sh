#!/usr/bin/env bash
# Ensure a 6-node Redis Cluster (3 masters, 3 replicas) answers on 127.0.0.1:7000-7005 for tests
# (idempotent, safe to run concurrently). Left running for the next run, like scripts/redis.sh.
#   scripts/redis-cluster.sh          # start what is missing, wait until the cluster is healthy
#   scripts/redis-cluster.sh stop     # stop the nodes (SHUTDOWN NOSAVE) and forget the cluster
# A node a test killed is restarted: it rejoins from its nodes.conf (as a replica if its slots
# failed over meanwhile). Healthy means cluster_state:ok on every node, 3 masters each with a
# replica whose link is up, and every node agreeing on the slot owners.
# Env: REDIS_CLUSTER_PORT (first port, default 7000), REDIS_CLUSTER_NODE_TIMEOUT ms (default 2000),
#      REDIS_START_TIMEOUT seconds (default 60).
set -euo pipefail

HOST=127.0.0.1
FIRST="${REDIS_CLUSTER_PORT:-7000}"
NODE_TIMEOUT="${REDIS_CLUSTER_NODE_TIMEOUT:-2000}"
TIMEOUT="${REDIS_START_TIMEOUT:-60}"
PORTS=()
for i in 0 1 2 3 4 5; do PORTS+=($((FIRST + i))); done
DIR="${TMPDIR:-/tmp}/svc-redis-cluster-$FIRST"

die() { echo "[redis-cluster.sh] ERROR: $*" >&2; exit 1; }
say() { echo "[redis-cluster.sh] $*" >&2; }
cli() { timeout 3 redis-cli -h "$HOST" -p "$1" "${@:2}" 2>/dev/null; }
ping_ok() { [[ $(cli "$1" ping) == PONG ]]; }

command -v redis-server >/dev/null || die "redis-server not found (apt-get install -y redis-server)"

if [[ "${1:-}" == stop ]]; then
  for p in "${PORTS[@]}"; do cli "$p" shutdown nosave >/dev/null || true; done
  rm -rf "$DIR"
  exit 0
fi

healthy() {
  local masters p info nodes
  for p in "${PORTS[@]}"; do
    info=$(cli "$p" cluster info) || return 1
    [[ $info == *cluster_state:ok* ]] || return 1
  done
  nodes=$(cli "$FIRST" cluster nodes) || return 1
  # Every master has slots and a connected replica; nobody is marked failing.
  [[ $nodes != *fail* ]] || return 1
  masters=$(awk '$3 ~ /master/ && $9 != ""' <<<"$nodes" | wc -l)
  [[ $masters == 3 ]] || return 1
  [[ $(awk '$3 ~ /slave/' <<<"$nodes" | wc -l) == 3 ]] || return 1
  for p in "${PORTS[@]}"; do
    info=$(cli "$p" info replication) || return 1
    if [[ $info == *role:slave* ]]; then
      [[ $info == *master_link_status:up* ]] || return 1
    fi
  done
  return 0
}

healthy && exit 0

mkdir -p "$DIR"
exec {LOCKFD}>"$DIR/lock"
flock -w 120 "$LOCKFD" || die "timed out waiting for lock $DIR/lock"
healthy && exit 0

for p in "${PORTS[@]}"; do
  ping_ok "$p" && continue
  if (exec 3<>"/dev/tcp/$HOST/$p") 2>/dev/null; then
    for _ in $(seq 1 20); do ping_ok "$p" && break; sleep 0.25; done
    ping_ok "$p" && continue
    die "port $HOST:$p is in use but does not answer redis PING"
  fi
  mkdir -p "$DIR/$p"
  say "starting cluster node on $HOST:$p"
  redis-server --daemonize yes --bind "$HOST" --port "$p" --dir "$DIR/$p" \
    --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout "$NODE_TIMEOUT" \
    --cluster-replica-validity-factor 0 --save "" --appendonly no \
    --logfile "$DIR/$p/redis.log" {LOCKFD}>&- >/dev/null || die "redis-server $p failed to start"
done

deadline=$((SECONDS + TIMEOUT))
for p in "${PORTS[@]}"; do
  until ping_ok "$p"; do
    ((SECONDS < deadline)) || die "node $p did not answer PING (log $DIR/$p/redis.log)"
    sleep 0.2
  done
done

repair_after=$((SECONDS + 3))
# A fresh set of nodes (nobody knows anybody): create the cluster.
known=$(cli "$FIRST" cluster info | tr -d '\r' | sed -n 's/^cluster_known_nodes://p')
if [[ "${known:-1}" == 1 ]]; then
  args=()
  for p in "${PORTS[@]}"; do args+=("$HOST:$p"); done
  say "creating the cluster on ${PORTS[*]}"
  redis-cli --cluster create "${args[@]}" --cluster-replicas 1 --cluster-yes >/dev/null \
    || die "redis-cli --cluster create failed"
  repair_after=$((SECONDS + 15))
fi

until healthy; do
  if ((SECONDS >= deadline)); then
    cli "$FIRST" cluster nodes >&2 || true
    die "cluster not healthy within ${TIMEOUT}s (logs in $DIR/*/redis.log)"
  fi
  # A node that came back as a master without slots (its slots failed over meanwhile) becomes
  # a replica of the master with the fewest replicas (not at once after a create: the replicas
  # it named are still joining).
  if ((SECONDS >= repair_after)); then
    nodes=$(cli "$FIRST" cluster nodes || true)
    for port in $(awk '$3 ~ /master/ && $3 !~ /fail/ && $9 == "" {split($2, a, "[:@]"); print a[2]}' <<<"$nodes"); do
      m=$(awk '$3 ~ /master/ && $9 != "" {n[$1] += 0} $3 ~ /slave/ {n[$4]++}
        END {for (k in n) if (best == "" || n[k] < n[best]) best = k; print best}' <<<"$nodes")
      [[ -n "$m" ]] && say "node $port rejoins as a replica of $m" &&
        cli "$port" cluster replicate "$m" >/dev/null || true
      nodes=$(cli "$FIRST" cluster nodes || true)
    done
  fi
  sleep 0.5
done
say "cluster ready on $HOST:${PORTS[0]}-${PORTS[5]}"
