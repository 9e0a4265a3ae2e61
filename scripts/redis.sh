#!/usr/bin/env bash
# Ensure a Redis server answers PING on 127.0.0.1:6379 for tests (idempotent, safe to run concurrently).
#   scripts/redis.sh    # start if needed, wait until it answers, exit 0
# Env: REDIS_PORT (default 6379), REDIS_START_TIMEOUT seconds (default 30).
set -euo pipefail

HOST=127.0.0.1
PORT="${REDIS_PORT:-6379}"
TIMEOUT="${REDIS_START_TIMEOUT:-30}"

die() { echo "[redis.sh] ERROR: $*" >&2; exit 1; }
ping_ok() { [[ $(timeout 3 redis-cli -h "$HOST" -p "$PORT" ping 2>/dev/null) == PONG ]]; }

command -v redis-cli >/dev/null || die "redis-cli not found (apt-get install -y redis-server)"
ping_ok && exit 0

command -v redis-server >/dev/null || die "redis-server not found (apt-get install -y redis-server)"
LOCKDIR="${XDG_RUNTIME_DIR:-/tmp}"
exec {LOCKFD}>"$LOCKDIR/svc-redis-$PORT.lock"
flock -w 60 "$LOCKFD" || die "timed out waiting for lock $LOCKDIR/svc-redis-$PORT.lock"
ping_ok && exit 0

if (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; then
  # Something listens but does not answer PING yet (maybe still loading); give it a moment.
  for _ in $(seq 1 10); do ping_ok && exit 0; sleep 0.5; done
  die "port $HOST:$PORT is in use but does not answer redis PING"
fi

echo "[redis.sh] starting redis-server on $HOST:$PORT" >&2
redis-server --daemonize yes --bind "$HOST" --port "$PORT" --save "" --appendonly no \
  --dir "${TMPDIR:-/tmp}" --logfile "${TMPDIR:-/tmp}/svc-redis-$PORT.log" {LOCKFD}>&- >/dev/null \
  || die "redis-server failed to start"

deadline=$((SECONDS + TIMEOUT))
until ping_ok; do
  ((SECONDS < deadline)) || die "redis did not answer PING on $HOST:$PORT within ${TIMEOUT}s (log ${TMPDIR:-/tmp}/svc-redis-$PORT.log)"
  sleep 0.2
done
echo "[redis.sh] redis ready on $HOST:$PORT" >&2
