#!/usr/bin/env bash
# Redis CPU per PUBLISH as the number of subscribed connections (nodes holding
# a room's members) grows: the "Redis primary: live publish" figure of the
# README's capacity model. Starts its own redis-server on a free loopback port
# (persistence off), K redis-cli subscribers, then redis-benchmark (8 clients,
# 100,000 PUBLISHes of 100 bytes, no pipelining); Redis CPU from /proc.
# Usage: bash bench/redis_publish_cost.sh [K ...]   (default: 2 8 32 64)
set -euo pipefail
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no >/dev/null &
redis=$!
trap 'kill $redis 2>/dev/null' EXIT
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
tick=$(getconf CLK_TCK)
n=100000
payload=$(head -c 100 /dev/zero | tr '\0' x)
cpu() { awk '{print $14 + $15}' "/proc/$redis/stat"; }
for k in "${@:-2 8 32 64}"; do
  for k1 in $k; do
    subs=()
    for _ in $(seq "$k1"); do redis-cli -p "$port" SUBSCRIBE room >/dev/null & subs+=($!); done
    sleep 0.5
    before=$(cpu)
    redis-benchmark -p "$port" -c 8 -n "$n" -q PUBLISH room "$payload" >/dev/null
    after=$(cpu)
    python3 -c "print(f'K=$k1 subscribers: {($after - $before) / $tick * 1e6 / $n:.1f} µs of Redis CPU per PUBLISH')"
    kill "${subs[@]}" 2>/dev/null || true
    wait "${subs[@]}" 2>/dev/null || true
  done
done
