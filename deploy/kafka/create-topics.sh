#!/bin/bash
# Creates dealflow's topics with their partitions and retention (DESIGN §6), and re-applies the
# retention to topics that already exist, so running it again is harmless and also repairs a
# topic that a component created earlier with the broker's defaults.
#
# Runs inside the official apache/kafka image (docker-compose `topics` service, the Kubernetes
# Job in deploy/k8s/topics-job.yaml embeds this same file; deploy/check.sh keeps them equal).
#
# Environment:
#   KAFKA_BOOTSTRAP            bootstrap servers                  (default kafka:9092)
#   DEALFLOW_TOPIC_PREFIX      prefix of every topic name         (default "dealflow.")
#   DEALFLOW_TOPIC_PARTITIONS  partitions of every topic          (default 12)
#   DEALFLOW_TOPIC_REPLICATION replication factor                 (default 1; use 3 in production)
#   KAFKA_COMMAND_CONFIG       optional client properties file (TLS/SASL) for the admin tools
set -euo pipefail

BIN=${KAFKA_BIN:-/opt/kafka/bin}
BOOTSTRAP=${KAFKA_BOOTSTRAP:-kafka:9092}
PREFIX=${DEALFLOW_TOPIC_PREFIX-dealflow.}
PARTITIONS=${DEALFLOW_TOPIC_PARTITIONS:-12}
REPLICATION=${DEALFLOW_TOPIC_REPLICATION:-1}
EXTRA=()
if [ -n "${KAFKA_COMMAND_CONFIG:-}" ]; then
  EXTRA=(--command-config "$KAFKA_COMMAND_CONFIG")
fi

DAY_MS=86400000
# name (after the prefix) and its topic configuration.
TOPICS=(
  "integrations  cleanup.policy=compact"
  "health        cleanup.policy=compact"
  "sync-state    cleanup.policy=compact"
  "tenants       cleanup.policy=compact"
  "order-changed cleanup.policy=delete,retention.ms=$((7 * DAY_MS))"
  "deals         cleanup.policy=delete,retention.ms=-1,retention.bytes=-1"
  "contacts      cleanup.policy=delete,retention.ms=-1,retention.bytes=-1"
  "funnels       cleanup.policy=delete,retention.ms=-1,retention.bytes=-1"
  "dead-letter   cleanup.policy=delete,retention.ms=$((28 * DAY_MS))"
)

echo "waiting for Kafka at $BOOTSTRAP"
for attempt in $(seq 1 60); do
  if "$BIN/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" "${EXTRA[@]}" --list >/dev/null 2>&1; then
    break
  fi
  if [ "$attempt" = 60 ]; then
    echo "Kafka at $BOOTSTRAP did not answer within 120 s" >&2
    exit 1
  fi
  sleep 2
done

for entry in "${TOPICS[@]}"; do
  read -r name config <<<"$entry"
  topic="$PREFIX$name"
  settings=()
  IFS=, read -ra pairs <<<"$config"
  for pair in "${pairs[@]}"; do settings+=(--config "$pair"); done
  "$BIN/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" "${EXTRA[@]}" --create --if-not-exists \
    --topic "$topic" --partitions "$PARTITIONS" --replication-factor "$REPLICATION" "${settings[@]}"
  # --if-not-exists leaves an existing topic alone: enforce the retention on it too.
  "$BIN/kafka-configs.sh" --bootstrap-server "$BOOTSTRAP" "${EXTRA[@]}" --alter \
    --entity-type topics --entity-name "$topic" --add-config "$config" >/dev/null
  echo "topic $topic: $PARTITIONS partitions, $config"
done
