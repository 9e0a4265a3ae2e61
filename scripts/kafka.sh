#!/usr/bin/env bash
# Ensure a real Apache Kafka broker (single-node KRaft, broker+controller) answers on
# 127.0.0.1:9092 for tests. Idempotent and safe to run concurrently.
#
#   scripts/kafka.sh            # start (if needed) and wait until ready; exit 0 when usable
#   scripts/kafka.sh status     # exit 0 if a Kafka broker answers, 1 otherwise
#   scripts/kafka.sh stop       # stop the broker this script started (by its pid file)
#
# Environment (all optional):
#   KAFKA_HOME_CACHE   cache dir outside the repo (default: $HOME/.cache/svc-kafka);
#                      holds the jars (per version), config, data, log and pid file
#   KAFKA_VERSION      org.apache.kafka:kafka_2.13 version(s) to try, in order (default: "4.4.0 4.1.1 4.0.0")
#   KAFKA_PORT         client port (default 9092); KAFKA_CONTROLLER_PORT (default 9093)
#   KAFKA_HEAP_OPTS    JVM heap (default "-Xms256m -Xmx512m")
#   KAFKA_START_TIMEOUT seconds to wait for the broker to become ready (default 90)
#
# The broker is started with setsid/nohup and is left running after this script exits.
# Jars are resolved with Maven (into ~/.m2) and copied to $KAFKA_HOME_CACHE/kafka-<version>/libs.
set -euo pipefail

HOST=127.0.0.1
PORT="${KAFKA_PORT:-9092}"
CPORT="${KAFKA_CONTROLLER_PORT:-9093}"
CACHE="${KAFKA_HOME_CACHE:-${HOME:-/root}/.cache/svc-kafka}"
VERSIONS="${KAFKA_VERSION:-4.4.0 4.1.1 4.0.0}"
HEAP="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
LOG4J_VERSION=2.25.5
DEP_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1
RUN="$CACHE/run-$PORT"          # config, data, log, pid for this port
PIDFILE="$RUN/kafka.pid"
LOGFILE="$RUN/kafka.log"
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"
JAVAC="${JAVA_HOME:+$JAVA_HOME/bin/}javac"

log() { echo "[kafka.sh] $*" >&2; }
die() { echo "[kafka.sh] ERROR: $*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
# Probes
# ---------------------------------------------------------------------------------------------
port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# Real Kafka protocol check from pure bash: send a Metadata v4 request (all topics, no
# auto-creation) and check that the response echoes our correlation id and lists >= 1 broker.
kafka_metadata_ok() {
  local hex
  hex=$(
    exec 3<>"/dev/tcp/$HOST/$PORT" 2>/dev/null || exit 1
    # size=23 | api_key=3 (Metadata) | api_version=4 | correlation_id=0x4b414641 | client_id="kafka.sh"
    # | topics=-1 (null: all) | allow_auto_topic_creation=false
    printf '\x00\x00\x00\x17\x00\x03\x00\x04\x4b\x41\x46\x41\x00\x08kafka.sh\xff\xff\xff\xff\x00' >&3
    # response: size(4) correlation_id(4) throttle_time_ms(4) brokers_count(4)
    timeout 3 head -c 16 <&3 | od -An -v -tx1 | tr -d ' \n'
  ) 2>/dev/null || return 1
  [[ ${#hex} -eq 32 && ${hex:8:8} == 4b414641 ]] || return 1
  local nbrokers=$((16#${hex:24:8}))
  ((nbrokers >= 1 && nbrokers < 1000))
}

our_pid_alive() {
  [[ -f $PIDFILE ]] || return 1
  local pid; pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka'
}

case "${1:-start}" in
  status)
    if kafka_metadata_ok; then echo "kafka: up on $HOST:$PORT"; exit 0; fi
    echo "kafka: not reachable on $HOST:$PORT"; exit 1 ;;
  stop)
    if our_pid_alive; then
      pid=$(cat "$PIDFILE"); log "stopping broker pid $pid"; kill "$pid"
      for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
      rm -f "$PIDFILE"
    else
      log "no broker started by this script is running"
    fi
    exit 0 ;;
  start) ;;
  *) die "usage: $0 [start|status|stop]" ;;
esac

# 1. Fast path: a Kafka broker already answers.
if port_open "$PORT" && kafka_metadata_ok; then
  exit 0
fi

# 2. Serialise everything below (download, format, start) across concurrent callers.
mkdir -p "$CACHE" "$RUN"
exec {LOCKFD}>"$CACHE/lock"
if ! flock -w 600 "$LOCKFD"; then die "timed out waiting for lock $CACHE/lock"; fi

# Someone else may have started it while we waited for the lock.
if port_open "$PORT" && kafka_metadata_ok; then
  exit 0
fi

command -v "$JAVA" >/dev/null || die "java not found (need Java 17+)"

# ---------------------------------------------------------------------------------------------
# Resolve the broker and all runtime dependencies with Maven (cached).
# ---------------------------------------------------------------------------------------------
resolve() { # $1 = version; prints libs dir on success
  local v=$1 dir="$CACHE/kafka-$v"
  if [[ -f $dir/libs/.complete ]]; then echo "$dir/libs"; return 0; fi
  command -v mvn >/dev/null || { log "mvn not found"; return 1; }
  mkdir -p "$dir"
  cat >"$dir/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.svc</groupId>
  <artifactId>kafka-broker-runtime</artifactId>
  <version>$v</version>
  <packaging>pom</packaging>
  <dependencies>
    <!-- the broker (kafka.Kafka, kafka.tools.StorageTool); pulls kafka-server, -raft, -metadata,
         -storage, -group/-transaction/-share-coordinator, clients, scala, jackson, log4j-core ... -->
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$v</version></dependency>
    <!-- slf4j 1.7 binding to log4j2 (kafka_2.13 only brings slf4j-api + log4j-core) -->
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>$LOG4J_VERSION</version></dependency>
  </dependencies>
</project>
EOF
  rm -rf "$dir/libs.tmp"
  log "resolving org.apache.kafka:kafka_2.13:$v with Maven ..."
  if ! mvn -B -q -f "$dir/pom.xml" "$DEP_PLUGIN:copy-dependencies" \
      -DoutputDirectory="$dir/libs.tmp" -DincludeScope=runtime >"$dir/mvn.log" 2>&1; then
    log "Maven could not resolve kafka_2.13:$v (see $dir/mvn.log):"
    grep -E 'ERROR' "$dir/mvn.log" | head -5 >&2 || true
    rm -rf "$dir/libs.tmp"
    return 1
  fi
  ls "$dir/libs.tmp"/kafka_2.13-"$v".jar >/dev/null 2>&1 || { log "kafka_2.13-$v.jar missing after resolve"; return 1; }
  touch "$dir/libs.tmp/.complete"
  rm -rf "$dir/libs" && mv "$dir/libs.tmp" "$dir/libs"
  echo "$dir/libs"
}

LIBS="" VERSION=""
for v in $VERSIONS; do
  if LIBS=$(resolve "$v"); then VERSION=$v; break; fi
done
[[ -n $VERSION ]] || die "could not resolve any of kafka_2.13 versions: $VERSIONS"
CP="$LIBS/*"

# ---------------------------------------------------------------------------------------------
# Readiness check with the real Java AdminClient: describe cluster, create a topic, describe it.
# ---------------------------------------------------------------------------------------------
CHECK_DIR="$CACHE/kafka-$VERSION/check"
mkdir -p "$CHECK_DIR"
cat >"$CHECK_DIR/KafkaReady.java.new" <<'EOF'
import java.util.*;
import java.util.concurrent.*;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.common.errors.TopicExistsException;

public class KafkaReady {
  public static void main(String[] a) throws Exception {
    Properties p = new Properties();
    p.put("bootstrap.servers", a[0]);
    p.put("request.timeout.ms", "5000");
    p.put("default.api.timeout.ms", "10000");
    try (Admin admin = Admin.create(p)) {
      Collection<?> nodes = admin.describeCluster().nodes().get(10, TimeUnit.SECONDS);
      try {
        admin.createTopics(List.of(new NewTopic(a[1], 1, (short) 1))).all().get(10, TimeUnit.SECONDS);
      } catch (ExecutionException e) {
        if (!(e.getCause() instanceof TopicExistsException)) throw e;
      }
      TopicDescription d = admin.describeTopics(List.of(a[1])).allTopicNames().get(10, TimeUnit.SECONDS).get(a[1]);
      if (d.partitions().isEmpty() || d.partitions().get(0).leader() == null) {
        System.err.println("topic " + a[1] + " has no leader yet");
        System.exit(2);
      }
      System.out.println("nodes=" + nodes.size() + " topic=" + a[1] + " leader=" + d.partitions().get(0).leader().idString());
    }
  }
}
EOF
if ! cmp -s "$CHECK_DIR/KafkaReady.java.new" "$CHECK_DIR/KafkaReady.java" || [[ ! -f $CHECK_DIR/KafkaReady.class ]]; then
  mv "$CHECK_DIR/KafkaReady.java.new" "$CHECK_DIR/KafkaReady.java"
  "$JAVAC" -nowarn -cp "$CP" -d "$CHECK_DIR" "$CHECK_DIR/KafkaReady.java" || die "could not compile readiness check"
else
  rm -f "$CHECK_DIR/KafkaReady.java.new"
fi

cat >"$RUN/log4j2-client.properties" <<'EOF'
status = error
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = %p %m (%c)%n
rootLogger.level = ERROR
rootLogger.appenderRef.err.ref = STDERR
EOF

admin_ready() {
  timeout 40 "$JAVA" -Xmx128m -XX:TieredStopAtLevel=1 -Dlog4j2.configurationFile="$RUN/log4j2-client.properties" \
    -cp "$CHECK_DIR:$CP" KafkaReady "$HOST:$PORT" __svc_kafka_ready >>"$RUN/ready.log" 2>&1
}

wait_ready() { # $1 = pid or "" ; waits until metadata + admin checks pass
  local pid=$1 deadline=$((SECONDS + TIMEOUT))
  while ((SECONDS < deadline)); do
    if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
      log "broker process $pid exited during startup; last lines of $LOGFILE:"
      tail -n 40 "$LOGFILE" >&2 || true
      return 1
    fi
    if port_open "$PORT" && kafka_metadata_ok && admin_ready; then return 0; fi
    sleep 1
  done
  log "broker did not become ready on $HOST:$PORT within ${TIMEOUT}s; last lines of $LOGFILE:"
  tail -n 40 "$LOGFILE" >&2 || true
  tail -n 5 "$RUN/ready.log" >&2 || true
  return 1
}

# A broker we started earlier may still be booting (or hung).
if our_pid_alive; then
  pid=$(cat "$PIDFILE")
  log "broker pid $pid (started earlier) is alive but not ready yet; waiting ..."
  if wait_ready "$pid"; then exit 0; fi
  log "killing unresponsive broker pid $pid"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -9 "$pid" 2>/dev/null || true
fi
rm -f "$PIDFILE"

for p in "$PORT" "$CPORT"; do
  if port_open "$p"; then
    die "port $HOST:$p is in use by something that is not a Kafka broker started by this script; free it first"
  fi
done

# ---------------------------------------------------------------------------------------------
# Config + fresh storage, then start.
# ---------------------------------------------------------------------------------------------
DATA="$RUN/data"
cat >"$RUN/server.properties" <<EOF
# generated by scripts/kafka.sh (kafka_2.13 $VERSION) - single node KRaft broker+controller
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$CPORT
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CPORT
advertised.listeners=PLAINTEXT://$HOST:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA
auto.create.topics.enable=true
delete.topic.enable=true
num.partitions=3
default.replication.factor=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
EOF

cat >"$RUN/log4j2.properties" <<'EOF'
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
logger.config.name = org.apache.kafka.common.config
logger.config.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.clientutils.name = org.apache.kafka.clients
logger.clientutils.level = WARN
EOF

rm -rf "$DATA"
mkdir -p "$DATA"
CLUSTER_ID=$("$JAVA" -Xmx128m -Dlog4j2.configurationFile="$RUN/log4j2-client.properties" -cp "$CP" kafka.tools.StorageTool random-uuid 2>>"$RUN/format.log")
[[ -n $CLUSTER_ID ]] || die "StorageTool random-uuid failed (see $RUN/format.log)"
if ! "$JAVA" -Xmx256m -Dlog4j2.configurationFile="$RUN/log4j2-client.properties" -cp "$CP" \
    kafka.tools.StorageTool format -t "$CLUSTER_ID" -c "$RUN/server.properties" >"$RUN/format.log" 2>&1; then
  tail -n 20 "$RUN/format.log" >&2
  die "storage format failed (see $RUN/format.log)"
fi

log "starting kafka_2.13 $VERSION (KRaft) on $HOST:$PORT, log: $LOGFILE"
: >"$RUN/ready.log"
# Close the lock fd in the child so the long-running broker does not keep the lock.
# shellcheck disable=SC2086
setsid nohup "$JAVA" $HEAP -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
  -Dlog4j2.configurationFile="$RUN/log4j2.properties" -Dkafka.logs.dir="$RUN" \
  -cp "$CP" kafka.Kafka "$RUN/server.properties" \
  >"$LOGFILE" 2>&1 </dev/null {LOCKFD}>&- &
pid=$!
echo "$pid" >"$PIDFILE"
echo "$VERSION" >"$RUN/version"

if ! wait_ready "$pid"; then
  die "Kafka broker did not come up on $HOST:$PORT (pid $pid, log $LOGFILE)"
fi
log "kafka_2.13 $VERSION ready on $HOST:$PORT (pid $pid)"
