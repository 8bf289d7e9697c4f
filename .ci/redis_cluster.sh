#!/usr/bin/env bash
# A local Redis Cluster of three masters on 127.0.0.1 (ports 7101-7103 unless CLUSTER_PORTS says
# otherwise), for the hot-cache tests on a sharded Redis. Nothing is kept on disk between runs.
#
#   .ci/redis_cluster.sh start DIR   → prints the node URLs, comma-separated
#   .ci/redis_cluster.sh stop DIR
set -euo pipefail
ACTION=$1
DIR=$2
PORTS=${CLUSTER_PORTS:-"7101 7102 7103"}
case "$ACTION" in
start)
  mkdir -p "$DIR"
  for port in $PORTS; do
    redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
    mkdir -p "$DIR/$port"
    rm -f "$DIR/$port"/nodes.conf
    redis-server --port "$port" --bind 127.0.0.1 --cluster-enabled yes \
      --cluster-config-file "$DIR/$port/nodes.conf" --cluster-node-timeout 2000 \
      --save "" --appendonly no --dir "$DIR/$port" --daemonize yes \
      --logfile "$DIR/$port/redis.log" --pidfile "$DIR/$port/redis.pid"
  done
  for port in $PORTS; do
    for _ in $(seq 1 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  done
  nodes=""
  for port in $PORTS; do nodes="$nodes 127.0.0.1:$port"; done
  # shellcheck disable=SC2086
  redis-cli --cluster create $nodes --cluster-replicas 0 --cluster-yes >"$DIR/create.log" 2>&1
  first=${PORTS%% *}
  for _ in $(seq 1 100); do
    redis-cli -p "$first" cluster info 2>/dev/null | grep -q 'cluster_state:ok' && break
    sleep 0.1
  done
  redis-cli -p "$first" cluster info | grep -q 'cluster_state:ok' ||
    { echo "the Redis Cluster did not form" >&2; cat "$DIR/create.log" >&2; exit 1; }
  urls=""
  for port in $PORTS; do urls="${urls:+$urls,}redis://127.0.0.1:$port"; done
  echo "$urls"
  ;;
stop)
  for port in $PORTS; do redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; done
  rm -rf "$DIR"
  ;;
*)
  echo "usage: $0 start|stop DIR" >&2
  exit 2
  ;;
esac
