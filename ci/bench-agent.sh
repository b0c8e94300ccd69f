#!/usr/bin/env bash
# Idle RSS and stripped binary size of the agent (start-up time is
# BenchmarkStartToFirstCheck in agent/cmd/cocoon-agent).
set -euo pipefail
cd "$(dirname "$0")/.."
sock_dir=$(mktemp -d)
trap 'rm -rf "$sock_dir"' EXIT

addr="unix://$sock_dir/a.sock"
KATA_AGENT_SERVER_ADDR=$addr KATA_AGENT_LOG_LEVEL=error bin/cocoon-agent --decision-log "$sock_dir/d.log" &
pid=$!
until bin/cocoonctl --addr "$addr" --timeout 1s check >/dev/null 2>&1; do sleep 0.01; done
sleep 1
echo "idle_rss_kb $(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")"
kill -TERM "$pid"; wait "$pid" || true
echo "agent_binary_bytes $(stat -c %s bin/cocoon-agent) (stripped, static)"
