#!/usr/bin/env bash
# Shared by scripts/kafka.sh (single broker), scripts/kafka-cluster.sh (3-node KRaft cluster) and
# scripts/kafka-sasl.sh (SASL_SSL broker): resolving the Kafka jars from Maven Central into one
# cache, the raw metadata probe, the Java AdminClient readiness check, formatting and starting a
# KRaft node, and a one-node broker's start from fresh storage. Sourced, not run. See scripts/KAFKA.md.
#
# Environment (all optional):
#   KAFKA_HOME_CACHE   cache dir outside the repo (default: $HOME/.cache/svc-kafka)
#   KAFKA_VERSION      org.apache.kafka:kafka_2.13 version(s) to try, in order (default: "4.4.0 4.1.1 4.0.0")
#   KAFKA_START_TIMEOUT seconds to wait for a broker to become ready (default 90)

HOST=127.0.0.1
CACHE="${KAFKA_HOME_CACHE:-${HOME:-/root}/.cache/svc-kafka}"
VERSIONS="${KAFKA_VERSION:-4.4.0 4.1.1 4.0.0}"
TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
LOG4J_VERSION=2.25.5
DEP_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"
JAVAC="${JAVA_HOME:+$JAVA_HOME/bin/}javac"
LOG_TAG="${LOG_TAG:-kafka.sh}"

log() { echo "[$LOG_TAG] $*" >&2; }
die() { echo "[$LOG_TAG] ERROR: $*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
# Probes
# ---------------------------------------------------------------------------------------------
port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# Real Kafka protocol check from pure bash: send a Metadata v4 request (all topics, no
# auto-creation) to a PLAINTEXT listener and check that the response echoes our correlation id
# and lists at least $2 brokers (default 1).
kafka_metadata_ok() { # $1 = port, $2 = least brokers
  local port=$1 least=${2:-1} hex
  port_open "$port" || return 1
  hex=$(
    exec 3<>"/dev/tcp/$HOST/$port" 2>/dev/null || exit 1
    # size=23 | api_key=3 (Metadata) | api_version=4 | correlation_id=0x4b414641 | client_id="kafka.sh"
    # | topics=-1 (null: all) | allow_auto_topic_creation=false
    printf '\x00\x00\x00\x17\x00\x03\x00\x04\x4b\x41\x46\x41\x00\x08kafka.sh\xff\xff\xff\xff\x00' >&3
    # response: size(4) correlation_id(4) throttle_time_ms(4) brokers_count(4)
    timeout 3 head -c 16 <&3 | od -An -v -tx1 | tr -d ' \n'
  ) 2>/dev/null || return 1
  [[ ${#hex} -eq 32 && ${hex:8:8} == 4b414641 ]] || return 1
  local nbrokers=$((16#${hex:24:8}))
  ((nbrokers >= least && nbrokers < 1000))
}

pid_alive() { # $1 = pid file: a kafka.Kafka process started by these scripts
  [[ -f $1 ]] || return 1
  local pid; pid=$(cat "$1" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka'
}

stop_pid() { # $1 = pid file
  if pid_alive "$1"; then
    local pid; pid=$(cat "$1"); log "stopping broker pid $pid"; kill "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  fi
  rm -f "$1"
}

# Serialise starts across concurrent callers (one lock for every script: they share the jars).
take_lock() {
  mkdir -p "$CACHE"
  exec {LOCKFD}>"$CACHE/lock"
  if ! flock -w 600 "$LOCKFD"; then die "timed out waiting for lock $CACHE/lock"; fi
}

# ---------------------------------------------------------------------------------------------
# Resolve the broker and all runtime dependencies with Maven (cached): sets VERSION, LIBS, CP.
# ---------------------------------------------------------------------------------------------
_resolve() { # $1 = version; prints libs dir on success
  local v=$1 dir="$CACHE/kafka-$1"
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

resolve_kafka() {
  command -v "$JAVA" >/dev/null || die "java not found (need Java 17+)"
  LIBS="" VERSION=""
  for v in $VERSIONS; do
    if LIBS=$(_resolve "$v"); then VERSION=$v; break; fi
  done
  [[ -n $VERSION ]] || die "could not resolve any of kafka_2.13 versions: $VERSIONS"
  CP="$LIBS/*"
  _compile_ready_check
}

# ---------------------------------------------------------------------------------------------
# Readiness check with the real Java AdminClient: describe the cluster (at least N nodes),
# create a topic with replication factor N, see that it has a leader.
# ---------------------------------------------------------------------------------------------
_compile_ready_check() {
  CHECK_DIR="$CACHE/kafka-$VERSION/check"
  mkdir -p "$CHECK_DIR"
  cat >"$CHECK_DIR/KafkaReady.java.new" <<'EOF'
import java.io.FileInputStream;
import java.util.*;
import java.util.concurrent.*;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.common.errors.TopicExistsException;

/** args: bootstrap topic [replicas] [client.properties] */
public class KafkaReady {
  public static void main(String[] a) throws Exception {
    Properties p = new Properties();
    if (a.length > 3) try (FileInputStream in = new FileInputStream(a[3])) { p.load(in); }
    p.put("bootstrap.servers", a[0]);
    p.put("request.timeout.ms", "5000");
    p.put("default.api.timeout.ms", "10000");
    short replicas = a.length > 2 ? Short.parseShort(a[2]) : 1;
    try (Admin admin = Admin.create(p)) {
      Collection<?> nodes = admin.describeCluster().nodes().get(10, TimeUnit.SECONDS);
      if (nodes.size() < replicas) {
        System.err.println("only " + nodes.size() + " of " + replicas + " brokers registered");
        System.exit(2);
      }
      try {
        admin.createTopics(List.of(new NewTopic(a[1], 1, replicas))).all().get(10, TimeUnit.SECONDS);
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
}

write_log4j() { # $1 = run dir: log4j2-client.properties (tools) and log4j2.properties (broker)
  cat >"$1/log4j2-client.properties" <<'EOF'
status = error
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = %p %m (%c)%n
rootLogger.level = ERROR
rootLogger.appenderRef.err.ref = STDERR
EOF
  cat >"$1/log4j2.properties" <<'EOF'
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
}

admin_ready() { # $1 = bootstrap, $2 = run dir, $3 = replicas (default 1), $4 = client properties
  timeout 40 "$JAVA" -Xmx128m -XX:TieredStopAtLevel=1 -Dlog4j2.configurationFile="$2/log4j2-client.properties" \
    -cp "$CHECK_DIR:$CP" KafkaReady "$1" __svc_kafka_ready "${3:-1}" ${4:+"$4"} >>"$2/ready.log" 2>&1
}

new_cluster_id() { # $1 = run dir
  "$JAVA" -Xmx128m -Dlog4j2.configurationFile="$1/log4j2-client.properties" -cp "$CP" \
    kafka.tools.StorageTool random-uuid 2>>"$1/format.log"
}

format_node() { # $1 = run dir (with server.properties), $2 = cluster id, $3... = extra StorageTool args
  local run=$1 id=$2; shift 2
  if ! "$JAVA" -Xmx256m -Dlog4j2.configurationFile="$run/log4j2-client.properties" -cp "$CP" \
      kafka.tools.StorageTool format -t "$id" -c "$run/server.properties" "$@" >"$run/format.log" 2>&1; then
    tail -n 20 "$run/format.log" >&2
    die "storage format failed (see $run/format.log)"
  fi
}

start_node() { # $1 = run dir, $2 = heap options; writes $1/kafka.pid, logs to $1/kafka.log
  local run=$1 heap=$2
  : >"$run/ready.log"
  # Close the lock fd in the child so the long-running broker does not keep the lock.
  # shellcheck disable=SC2086
  setsid nohup "$JAVA" $heap -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$run/log4j2.properties" -Dkafka.logs.dir="$run" \
    -cp "$CP" kafka.Kafka "$run/server.properties" \
    >"$run/kafka.log" 2>&1 </dev/null {LOCKFD}>&- &
  echo "$!" >"$run/kafka.pid"
  echo "$VERSION" >"$run/version"
}

# Waits until `$1` (a command) succeeds, while every pid file in $2.. names a live process.
wait_until() {
  local check=$1; shift
  local deadline=$((SECONDS + TIMEOUT)) f
  while ((SECONDS < deadline)); do
    for f in "$@"; do
      if ! pid_alive "$f"; then
        log "broker $(dirname "$f") exited during startup; last lines of its log:"
        tail -n 40 "$(dirname "$f")/kafka.log" >&2 || true
        return 1
      fi
    done
    if $check; then return 0; fi
    sleep 1
  done
  log "not ready within ${TIMEOUT}s"
  for f in "$@"; do tail -n 20 "$(dirname "$f")/kafka.log" >&2 || true; tail -n 5 "$(dirname "$f")/ready.log" >&2 || true; done
  return 1
}

# ---------------------------------------------------------------------------------------------
# One node (scripts/kafka.sh, scripts/kafka-sasl.sh): each defines `ready` (its readiness
# check), then calls these in order.
# ---------------------------------------------------------------------------------------------

# A broker started earlier may still be booting (or hung): waits for it (exit 0 once ready), or
# stops it; then its ports must be free. $1 = pid file, $2... = the ports.
resume_or_free() {
  local pidfile=$1; shift
  if pid_alive "$pidfile"; then
    log "broker pid $(cat "$pidfile") (started earlier) is alive but not ready yet; waiting ..."
    if wait_until ready "$pidfile"; then exit 0; fi
    log "killing unresponsive broker"
    stop_pid "$pidfile"
  fi
  rm -f "$pidfile"
  ports_free "$@"
}

ports_free() { # $@ = ports these scripts are about to listen on
  local p
  for p in "$@"; do
    if port_open "$p"; then
      die "port $HOST:$p is in use by something these scripts did not start; free it first"
    fi
  done
}

# The server.properties lines every node of these scripts shares: broker and controller in one
# process, three partitions a topic, the internal topics on $1 replicas with min ISR $2, and $3
# I/O threads.
kraft_properties() {
  cat <<EOP
process.roles=broker,controller
controller.listener.names=CONTROLLER
num.partitions=3
default.replication.factor=1
offsets.topic.replication.factor=$1
transaction.state.log.replication.factor=$1
transaction.state.log.min.isr=$2
share.coordinator.state.topic.replication.factor=$1
share.coordinator.state.topic.min.isr=$2
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=$3
EOP
}

# The server.properties lines of a one-node cluster on $PORT (clients) and $CPORT (controller),
# with its data in $RUN/data. $1 = the clients' protocol (PLAINTEXT, SASL_SSL), $2 = I/O threads.
one_node_properties() {
  cat <<EOP
node.id=1
controller.quorum.voters=1@$HOST:$CPORT
listeners=$1://$HOST:$PORT,CONTROLLER://$HOST:$CPORT
advertised.listeners=$1://$HOST:$PORT
inter.broker.listener.name=$1
listener.security.protocol.map=CONTROLLER:PLAINTEXT,$1:$1
log.dirs=$RUN/data
EOP
  kraft_properties 1 1 "$2"
}

# Formats fresh storage in $1/data (with $1/server.properties), starts the node and waits until
# `ready`. $1 = run dir, $2 = heap options, $3 = what it is (for the log), $4... = extra
# StorageTool format arguments.
start_fresh_node() {
  local run=$1 heap=$2 what=$3 id; shift 3
  rm -rf "$run/data"
  mkdir -p "$run/data"
  id=$(new_cluster_id "$run")
  [[ -n $id ]] || die "StorageTool random-uuid failed (see $run/format.log)"
  format_node "$run" "$id" "$@"
  log "starting $what on $HOST:$PORT, log: $run/kafka.log"
  start_node "$run" "$heap"
  if ! wait_until ready "$run/kafka.pid"; then
    die "$what did not come up on $HOST:$PORT (pid $(cat "$run/kafka.pid"), log $run/kafka.log)"
  fi
  log "$what ready on $HOST:$PORT (pid $(cat "$run/kafka.pid"))"
}
