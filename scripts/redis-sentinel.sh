#!/usr/bin/env bash
# Ensure a Redis primary/replica pair (127.0.0.1:6380, 6381) watched by 3 sentinels
# (26380-26382, master name "svc") answers for tests (idempotent, safe to run concurrently).
# Left running for the next run, like scripts/redis.sh.
#   scripts/redis-sentinel.sh         # start what is missing, wait until healthy
#   scripts/redis-sentinel.sh stop    # stop every process and forget the state
# After a failover the roles stay swapped; a data node a test killed is restarted as a replica
# of the primary the sentinels name. Healthy means every sentinel names the same primary, that
# node says role:master, the other is its replica with the link up, and each sentinel knows the
# replica and the two other sentinels.
# Env: REDIS_SENTINEL_DOWN_AFTER_MS (default 1000), REDIS_START_TIMEOUT seconds (default 60).
set -euo pipefail

HOST=127.0.0.1
NAME=svc
DATA=(6380 6381)
SENTINELS=(26380 26381 26382)
DOWN_AFTER="${REDIS_SENTINEL_DOWN_AFTER_MS:-1000}"
TIMEOUT="${REDIS_START_TIMEOUT:-60}"
DIR="${TMPDIR:-/tmp}/svc-redis-sentinel"

die() { echo "[redis-sentinel.sh] ERROR: $*" >&2; exit 1; }
say() { echo "[redis-sentinel.sh] $*" >&2; }
cli() { timeout 3 redis-cli -h "$HOST" -p "$1" "${@:2}" 2>/dev/null | tr -d '\r'; }
ping_ok() { [[ $(cli "$1" ping) == PONG ]]; }
listening() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }
# The primary's port as sentinel $1 names it (empty if it names none).
named() { cli "$1" sentinel get-master-addr-by-name "$NAME" | sed -n 2p; }

command -v redis-server >/dev/null || die "redis-server not found (apt-get install -y redis-server)"

if [[ "${1:-}" == stop ]]; then
  for p in "${SENTINELS[@]}" "${DATA[@]}"; do cli "$p" shutdown nosave >/dev/null || true; done
  rm -rf "$DIR"
  exit 0
fi

healthy() {
  local primary="" p n info
  for p in "${SENTINELS[@]}"; do
    n=$(named "$p") || return 1
    [[ -n "$n" ]] || return 1
    [[ -z "$primary" || "$primary" == "$n" ]] || return 1
    primary=$n
    info=$(cli "$p" sentinel master "$NAME") || return 1
    [[ $(sed -n '/^flags$/{n;p}' <<<"$info") == master ]] || return 1
    [[ $(sed -n '/^num-slaves$/{n;p}' <<<"$info") == 1 ]] || return 1
    [[ $(sed -n '/^num-other-sentinels$/{n;p}' <<<"$info") == 2 ]] || return 1
  done
  [[ $(cli "$primary" role | head -1) == master ]] || return 1
  for p in "${DATA[@]}"; do
    [[ $p == "$primary" ]] && continue
    info=$(cli "$p" info replication) || return 1
    [[ $info == *role:slave* && $info == *master_port:$primary* && $info == *master_link_status:up* ]] ||
      return 1
  done
}

healthy && exit 0

mkdir -p "$DIR"
exec {LOCKFD}>"$DIR/lock"
flock -w 120 "$LOCKFD" || die "timed out waiting for lock $DIR/lock"
healthy && exit 0

# The primary now: what a running sentinel names, else 6380 (a fresh start).
primary=""
for p in "${SENTINELS[@]}"; do
  primary=$(named "$p" || true)
  [[ -n "$primary" ]] && break
done
primary=${primary:-${DATA[0]}}

for p in "${DATA[@]}"; do
  ping_ok "$p" && continue
  listening "$p" && die "port $HOST:$p is in use but does not answer redis PING"
  args=(--daemonize yes --bind "$HOST" --port "$p" --save "" --appendonly no --dir "$DIR"
    --logfile "$DIR/redis-$p.log" --dbfilename "dump-$p.rdb")
  [[ $p != "$primary" ]] && args+=(--replicaof "$HOST" "$primary")
  say "starting redis on $HOST:$p$([[ $p != "$primary" ]] && echo " (replica of $primary)")"
  redis-server "${args[@]}" {LOCKFD}>&- >/dev/null || die "redis-server $p failed to start"
done

for p in "${SENTINELS[@]}"; do
  ping_ok "$p" && continue
  listening "$p" && die "port $HOST:$p is in use but does not answer PING"
  conf="$DIR/sentinel-$p.conf"
  if [[ ! -f "$conf" ]]; then
    cat >"$conf" <<EOF
port $p
bind $HOST
dir $DIR
logfile $DIR/sentinel-$p.log
sentinel monitor $NAME $HOST $primary 2
sentinel down-after-milliseconds $NAME $DOWN_AFTER
sentinel failover-timeout $NAME 5000
sentinel parallel-syncs $NAME 1
EOF
  fi
  say "starting sentinel on $HOST:$p"
  redis-server "$conf" --sentinel --daemonize yes {LOCKFD}>&- >/dev/null || die "redis-sentinel $p failed to start"
done

deadline=$((SECONDS + TIMEOUT))
until healthy; do
  if ((SECONDS >= deadline)); then
    for p in "${SENTINELS[@]}"; do echo "sentinel $p names $(named "$p")" >&2; done
    die "not healthy within ${TIMEOUT}s (logs in $DIR)"
  fi
  sleep 0.3
done
say "primary $HOST:$(named "${SENTINELS[0]}") with its replica and 3 sentinels ready"
