#!/usr/bin/env bash
# A single-node Kafka for development and tests: KRaft mode (no ZooKeeper), one process acting as
# broker and controller, PLAINTEXT on 127.0.0.1:9092 and its controller on 127.0.0.1:9093.
#
#   scripts/kafka-dev.sh start    fetch the broker with Maven (scripts/kafka/pom.xml; cached in
#                                 ~/.m2 after the first run), format a fresh data folder, start the
#                                 broker in the background and wait until it answers a metadata
#                                 request. Does nothing when something already answers on the port.
#   scripts/kafka-dev.sh stop     stop the broker that `start` started (and only that process)
#   scripts/kafka-dev.sh kill     SIGKILL that broker at once (a crash, for fault tests); its data
#                                 stays for a `start` with FANOUT_KAFKA_KEEP_DATA=1
#   scripts/kafka-dev.sh status   say whether it runs
#   scripts/kafka-dev.sh version  print the version of the Kafka jars that `start` runs
#   scripts/kafka-dev.sh run TOOL [ARGS...]
#                                 run a Kafka tool from the same classpath: topics,
#                                 console-producer, console-consumer, verifiable-producer, or a
#                                 main class name
#
# Every start begins with an empty data folder, unless FANOUT_KAFKA_KEEP_DATA=1 and the folder was
# formatted before: then the broker starts on the data it had (topics, records and offsets kept
# across a restart, as a real broker's are). The previous run's log is kept as broker.log.1.
#
# Environment: FANOUT_KAFKA_DIR (the folder this script owns: data, config, log, pid; default
# /tmp/fanout-kafka), FANOUT_KAFKA_PORT (9092), FANOUT_KAFKA_CONTROLLER_PORT (9093),
# FANOUT_KAFKA_HEAP ("-Xms256m -Xmx512m"), FANOUT_KAFKA_START_TIMEOUT (seconds, 90),
# FANOUT_KAFKA_KEEP_DATA (1: restart on the existing data folder, see above),
# FANOUT_KAFKA_CACHE (where the resolved classpath and the class archive are kept between
# starts; default $XDG_CACHE_HOME/fanout-kafka or ~/.cache/fanout-kafka),
# FANOUT_KAFKA_CDS (0: no class archive, see class_archive below),
# FANOUT_KAFKA_PROXIED="LISTEN:ADVERTISED" (a second listener on 127.0.0.1:LISTEN that tells its
# clients to use port ADVERTISED: a test puts a TCP proxy there and cuts the link of the clients
# that bootstrap through it, while clients of the main port keep theirs),
# JAVA_HOME (else `java` on the PATH; Java 17 or newer).
#
# Over 400 lines, as one script on purpose: a developer, .ci/run and the tests' harness
# (harness/kafka.ts) all call it, and its commands share the folder lock, the classpath, the class
# archive and the broker's identity checks; split into several, each would source the others.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
POM=$HERE/kafka/pom.xml
LOG4J=$HERE/kafka/log4j2.properties

DIR=${FANOUT_KAFKA_DIR:-/tmp/fanout-kafka}
PORT=${FANOUT_KAFKA_PORT:-9092}
CONTROLLER_PORT=${FANOUT_KAFKA_CONTROLLER_PORT:-9093}
HEAP=${FANOUT_KAFKA_HEAP:--Xms256m -Xmx512m}
START_TIMEOUT=${FANOUT_KAFKA_START_TIMEOUT:-90}
KEEP_DATA=${FANOUT_KAFKA_KEEP_DATA:-0}
PROXIED=${FANOUT_KAFKA_PROXIED:-}
USE_CDS=${FANOUT_KAFKA_CDS:-1}
JAVA=${JAVA_HOME:+$JAVA_HOME/bin/}java

CONFIG=$DIR/server.properties
DATA=$DIR/data
LOG_FILE=$DIR/broker.log
PID_FILE=$DIR/broker.pid
CLASSPATH_FILE=$DIR/classpath
CACHE=${FANOUT_KAFKA_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/fanout-kafka}

say() { printf 'kafka-dev: %s\n' "$*"; }
die() { printf 'kafka-dev: %s\n' "$*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# One start or stop at a time per folder: a second start waits for the first and then finds the
# broker answering. The broker itself does not inherit the lock (its fd 9 is closed).
lock() {
  mkdir -p "$DIR"
  exec 9>"$DIR/lock"
  flock -w 300 9 || die "another start or stop of $DIR has held $DIR/lock for 300s"
}

# True when PID is the broker this script started from this folder (a recycled pid, an exited
# process or anybody else's Java is not).
ours() {
  local cmdline
  [ -r "/proc/$1/cmdline" ] || return 1
  cmdline=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null) || return 1
  [[ $cmdline == *" kafka.Kafka $CONFIG"* ]]
}

# The pid from the pid file when that process is still our broker.
running_pid() {
  local pid
  [ -f "$PID_FILE" ] || return 1
  pid=$(<"$PID_FILE")
  [[ $pid =~ ^[0-9]+$ ]] && ours "$pid" || return 1
  printf '%s\n' "$pid"
}

check_java() {
  local version
  command -v "$JAVA" >/dev/null || die "no java found (install a JRE 17+, e.g. Debian's default-jre-headless, or set JAVA_HOME)"
  version=$("$JAVA" -XshowSettings:properties -version 2>&1 | awk -F' = ' '/java.specification.version/ {print $2}')
  if ! [[ ${version%%.*} =~ ^[0-9]+$ ]] || ((${version%%.*} < 17)); then
    die "Kafka 4 needs Java 17 or newer; $JAVA is ${version:-unknown}"
  fi
}

# Resolves the broker and its runtime dependencies into the local Maven repository and writes
# their classpath to $CLASSPATH_FILE. Offline first, so that a warm ~/.m2 needs no network. Maven
# costs a JVM start (about 3 s on two cores), so the classpath is kept in $CACHE, keyed by the
# pom's checksum, and reused while every jar on it is still there: a test that starts brokers in
# fresh folders, or kills and restarts one, asks Maven once per pom.
resolve_classpath() {
  local sum cached
  mkdir -p "$DIR"
  sum=$(sha256sum "$POM" | cut -c1-16)
  cached=$CACHE/classpath-$sum
  if [ -s "$cached" ] && all_present "$(<"$cached")"; then
    cp "$cached" "$CLASSPATH_FILE"
    return 0
  fi
  command -v mvn >/dev/null || die "no mvn found (install Maven, e.g. Debian's maven)"
  local args=(-B -q -Dstyle.color=never -f "$POM" dependency:build-classpath
    -Dmdep.includeScope=runtime -Dmdep.outputFile="$CLASSPATH_FILE.new")
  if ! mvn -o "${args[@]}" >"$DIR/maven.log" 2>&1; then
    say "fetching Kafka with Maven (the first time only; cached in ~/.m2 afterwards)"
    if ! mvn "${args[@]}" >"$DIR/maven.log" 2>&1; then
      tail -n 40 "$DIR/maven.log" >&2 || true
      die "Maven could not resolve $POM (its output is in $DIR/maven.log)"
    fi
  fi
  mv "$CLASSPATH_FILE.new" "$CLASSPATH_FILE"
  # Best effort: a cache that cannot be written only means Maven runs next time too.
  if mkdir -p "$CACHE" 2>/dev/null && cp "$CLASSPATH_FILE" "$cached.$$" 2>/dev/null; then
    mv -f "$cached.$$" "$cached"
  fi
}

# True when every entry of the classpath $1 (colon-separated) is a file that exists.
all_present() {
  local jar jars
  IFS=: read -r -a jars <<<"$1"
  ((${#jars[@]})) || return 1
  for jar in "${jars[@]}"; do [ -f "$jar" ] || return 1; done
}

# A cluster id as kafka.tools.StorageTool random-uuid makes one (16 random bytes, URL-safe base64
# without padding, never starting with '-'), without a JVM start for it.
random_cluster_id() {
  local id
  while :; do
    id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
    [[ ${#id} == 22 && $id != -* && $id != AAAAAAAAAAAAAAAAAAAAA[AQ] ]] && break
  done
  printf '%s\n' "$id"
}

# The command line that runs a Kafka main class with the resolved classpath, a small heap and
# quiet logging.
tool_command() {
  TOOL=("$JAVA" "${CDS[@]}" -Xms32m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true
    -Dlog4j2.configurationFile="$LOG4J" -Dfanout.kafka.log.level=WARN
    -cp "$(<"$CLASSPATH_FILE")")
}

# Class data sharing (JDK 13+): the classes a broker loads while it starts, parsed and verified
# once and kept in an archive that later JVMs map instead of loading them from the jars. A broker
# start then costs about half the CPU (here 2.2 s against 4.1 s, answering in 1.3 s against 2.4 s)
# and the format tool 0.5 s against 0.9 s; tests start a dozen brokers and restart them. The
# archive (about 50 MB) is kept in $CACHE, keyed by the classpath and the Java build, and made by
# the first fresh start that finds none: it formats a copy of its data folder, starts a broker
# on it with -XX:ArchiveClassesAtExit, stops it once it has started (about 5 s once), then starts
# the real one. A JVM that cannot use an archive says so in the log and starts without it.
# Sets CDS to the options that use the archive, or to none.
CDS=()
class_archive() {
  local key
  CDS=()
  [ "$USE_CDS" = 1 ] || return 0
  key=$( { "$JAVA" -version 2>&1; cat "$CLASSPATH_FILE"; } | sha256sum | cut -c1-16)
  ARCHIVE=$CACHE/broker-classes-$key.jsa
  [ -s "$ARCHIVE" ] && CDS=(-XX:SharedArchiveFile="$ARCHIVE")
  return 0
}

# Makes $ARCHIVE (see class_archive) from a broker started on a copy of the freshly formatted
# $DATA, on this folder's ports (free: start checked). Best effort: any failure leaves no archive
# and the start goes on without one. One maker at a time across folders; the others start without.
make_class_archive() {
  [ "$USE_CDS" = 1 ] && [ ! -s "$ARCHIVE" ] || return 0
  mkdir -p "$CACHE" 2>/dev/null || return 0
  (
    set +e # best effort: a failed step ends this subshell with no archive, never the start
    flock -n 8 || exit 0
    [ -s "$ARCHIVE" ] && exit 0
    local tmp=$ARCHIVE.$$ data=$DIR/archive-data config=$DIR/archive.properties log=$DIR/archive.log pid
    rm -rf "$data" && cp -a "$DATA" "$data" || exit 0
    sed "s|^log.dirs=.*|log.dirs=$data|" "$CONFIG" >"$config"
    # shellcheck disable=SC2086 # HEAP is a list of JVM options
    "$JAVA" -XX:ArchiveClassesAtExit="$tmp" $HEAP -server -XX:+UseG1GC -Djava.awt.headless=true \
      -Dlog4j2.configurationFile="$LOG4J" -Dfanout.kafka.log.level=INFO \
      -cp "$(<"$CLASSPATH_FILE")" kafka.Kafka "$config" >"$log" 2>&1 </dev/null 8>&- 9>&- &
    pid=$!
    local deadline=$((SECONDS + START_TIMEOUT))
    until grep -q 'Kafka Server started' "$log" 2>/dev/null; do
      if ! kill -0 "$pid" 2>/dev/null || ((SECONDS >= deadline)); then
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        rm -rf "$data" "$tmp"
        exit 0
      fi
      sleep 0.1
    done
    kill -TERM "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    rm -rf "$data"
    if [ -s "$tmp" ]; then mv -f "$tmp" "$ARCHIVE"; else rm -f "$tmp"; fi
  ) 8>"$CACHE/archive.lock" || true
  class_archive
}

write_config() {
  [[ -z $PROXIED || $PROXIED =~ ^[0-9]+:[0-9]+$ ]] || die "FANOUT_KAFKA_PROXIED must be LISTEN:ADVERTISED (two ports), not $PROXIED"
  cat >"$CONFIG" <<EOF
# Written by scripts/kafka-dev.sh; rewritten on every start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT${PROXIED:+,PROXIED://127.0.0.1:${PROXIED%%:*}}
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT${PROXIED:+,PROXIED://127.0.0.1:${PROXIED##*:}}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,PROXIED:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$DATA

# One node: every topic has one partition and one replica, internal ones too.
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
share.coordinator.state.topic.num.partitions=1
group.initial.rebalance.delay.ms=0

# A broker killed and started again registers as a new incarnation only once the controller has
# fenced the old one, when its session times out (9 s by default: a restart after a kill would
# wait that long). One process holds both, so heartbeats never cross a network.
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=3000

# Tests never read anything older than an hour; segments stay small.
log.retention.ms=3600000
log.retention.check.interval.ms=60000
log.segment.bytes=16777216

# Two cores: few threads.
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
background.threads=2
EOF
}

# True when the broker answers a metadata request and lists itself among the brokers: a Metadata
# v4 request (all topics, client id "probe", correlation id 1) written to its port from bash, and
# the first 16 bytes of the answer checked (size, correlation id 1, throttle time, a broker count
# of at least 1). Kafka's own TopicCommand did the same in a JVM, about a second per probe.
answers() {
  port_open "$PORT" || return 1
  local reply
  reply=$(timeout 5 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "\x00\x00\x00\x14\x00\x03\x00\x04\x00\x00\x00\x01\x00\x05probe\xff\xff\xff\xff\x00" >&3
    head -c 16 <&3 | od -An -v -tx1' _ "$PORT" 2>/dev/null) || return 1
  # shellcheck disable=SC2086 # one word per byte
  set -- $reply
  (($# == 16)) && [ "$5$6$7$8" = 00000001 ] && [ "${13}${14}${15}${16}" != 00000000 ]
}

# True when this run's log says the server has started (the first step of a start is to move
# the previous run's log away).
started_logged() {
  grep -q 'Kafka Server started' "$LOG_FILE" 2>/dev/null
}

start() {
  local pid cluster_id started=$SECONDS
  lock
  if port_open "$PORT"; then
    say "something already answers on 127.0.0.1:$PORT; leaving it as it is"
    return 0
  fi
  if pid=$(running_pid); then
    say "the broker (pid $pid) is still starting; waiting for it"
    tool_command
  else
    port_open "$CONTROLLER_PORT" &&
      die "port $CONTROLLER_PORT (the controller's) is taken; set FANOUT_KAFKA_CONTROLLER_PORT"
    check_java
    resolve_classpath
    class_archive
    tool_command
    rm -f "$PID_FILE"
    [ ! -f "$LOG_FILE" ] || mv -f "$LOG_FILE" "$LOG_FILE.1" # the previous run's log
    write_config
    if [ "$KEEP_DATA" = 1 ] && [ -f "$DATA/meta.properties" ]; then
      printf '=== %s: start on the kept data of %s\n' "$(date -u +%FT%TZ)" "$(<"$DIR/cluster-id")" >>"$LOG_FILE"
    else
      rm -rf "$DATA"
      mkdir -p "$DATA"
      cluster_id=$(random_cluster_id)
      printf '%s\n' "$cluster_id" >"$DIR/cluster-id"
      {
        printf '=== %s: format %s, start\n' "$(date -u +%FT%TZ)" "$cluster_id"
        "${TOOL[@]}" kafka.tools.StorageTool format --cluster-id "$cluster_id" --config "$CONFIG" --ignore-formatted
      } >>"$LOG_FILE" 2>&1 || { tail -n 20 "$LOG_FILE" >&2 || true; die "formatting $DATA failed"; }
      make_class_archive
    fi

    # shellcheck disable=SC2086 # HEAP is a list of JVM options
    nohup "$JAVA" "${CDS[@]}" $HEAP -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
      -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
      -Dlog4j2.configurationFile="$LOG4J" -Dfanout.kafka.log.level=INFO \
      -cp "$(<"$CLASSPATH_FILE")" kafka.Kafka "$CONFIG" >>"$LOG_FILE" 2>&1 </dev/null 9>&- &
    pid=$!
    # Until nohup and then java have been exec'd, the pid still runs a copy of this script.
    for _ in $(seq 1 100); do
      if ours "$pid" || ! kill -0 "$pid" 2>/dev/null; then break; fi
      sleep 0.1
    done
    printf '%s\n' "$pid" >"$PID_FILE"
    say "starting Kafka (pid $pid, log $LOG_FILE)"
  fi

  # The listener accepts connections before the broker serves them (a probe then waits out its
  # timeout), so the probe runs once the log says the server started; in case a version logs
  # otherwise, it also runs every 10 s.
  local deadline=$((SECONDS + START_TIMEOUT)) next_probe=$((SECONDS + 10))
  until { started_logged || ((SECONDS >= next_probe)); } && answers; do
    if ! ours "$pid"; then
      tail -n 40 "$LOG_FILE" >&2 || true
      rm -f "$PID_FILE"
      die "the broker exited while starting (log above, whole in $LOG_FILE)"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 40 "$LOG_FILE" >&2 || true
      stop locked >&2
      die "the broker did not answer on 127.0.0.1:$PORT within ${START_TIMEOUT}s (log above, whole in $LOG_FILE); stopped it"
    fi
    ((SECONDS < next_probe)) || next_probe=$((SECONDS + 10))
    sleep 0.2
  done
  say "Kafka answers on 127.0.0.1:$PORT (pid $pid, $((SECONDS - started))s)"
}

stop() {
  local pid
  [ "${1:-}" = locked ] || lock
  if ! pid=$(running_pid); then
    rm -f "$PID_FILE"
    if port_open "$PORT"; then
      say "no broker started by this script runs; whatever answers on $PORT is left alone"
    else
      say "not running"
    fi
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 120); do # a controlled shutdown takes a few seconds
    ours "$pid" || break
    sleep 0.5
  done
  if ours "$pid"; then
    say "pid $pid did not stop within 60s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 1 20); do
      ours "$pid" || break
      sleep 0.5
    done
  fi
  ours "$pid" && die "pid $pid is still there"
  rm -f "$PID_FILE"
  say "stopped Kafka (pid $pid)"
}

# SIGKILL, no controlled shutdown: what a crash or an OOM kill looks like to the clients.
kill_broker() {
  local pid
  lock
  if ! pid=$(running_pid); then
    rm -f "$PID_FILE"
    say "not running"
    return 0
  fi
  kill -KILL "$pid" 2>/dev/null || true
  for _ in $(seq 1 40); do
    ours "$pid" || break
    sleep 0.25
  done
  ours "$pid" && die "pid $pid is still there"
  # The listener can outlive the pid's command line by a moment; a start meanwhile would take
  # the dying broker for a running one and leave it at that.
  for _ in $(seq 1 100); do
    port_open "$PORT" || break
    sleep 0.1
  done
  rm -f "$PID_FILE"
  say "killed Kafka (pid $pid)"
}

status() {
  local pid
  if pid=$(running_pid); then
    if port_open "$PORT"; then say "running (pid $pid) on 127.0.0.1:$PORT"; else say "starting (pid $pid)"; fi
  elif port_open "$PORT"; then
    say "not started by this script, but something answers on 127.0.0.1:$PORT"
  else
    say "not running"
    return 3
  fi
}

run() {
  (($#)) || die "usage: $0 run TOOL [ARGS...]"
  local tool=$1
  shift
  case $tool in
    topics) tool=org.apache.kafka.tools.TopicCommand ;;
    console-producer) tool=org.apache.kafka.tools.ConsoleProducer ;;
    console-consumer) tool=org.apache.kafka.tools.consumer.ConsoleConsumer ;;
    verifiable-producer) tool=org.apache.kafka.tools.VerifiableProducer ;;
    verifiable-consumer) tool=org.apache.kafka.tools.VerifiableConsumer ;;
    *.*) ;;
    *) die "unknown tool $tool (topics, console-producer, console-consumer, verifiable-producer, verifiable-consumer, or a main class)" ;;
  esac
  [ -s "$CLASSPATH_FILE" ] || { check_java; resolve_classpath; }
  class_archive
  tool_command
  exec "${TOOL[@]}" "$tool" "$@"
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  kill) kill_broker ;;
  status) status ;;
  version) printf 'Kafka %s\n' "$(run kafka.Kafka --version)" ;;
  run) shift; run "$@" ;;
  *) die "usage: $0 start|stop|kill|status|version|run TOOL [ARGS...]" ;;
esac
