#!/usr/bin/env bash
# make run: start cocoon-agent on a local unix socket and drive it with cocoonctl.
set -euo pipefail
cd "$(dirname "$0")/.."

ADDR=${COCOON_ADDR:-unix:///run/cocoon/agent.sock}
ctl() { bin/cocoonctl --addr "$ADDR" "$@"; }

KATA_AGENT_SERVER_ADDR=$ADDR bin/cocoon-agent &
agent=$!
trap 'kill -TERM $agent 2>/dev/null; wait $agent 2>/dev/null || true' EXIT INT TERM

for _ in $(seq 100); do ctl --timeout 1s check >/dev/null 2>&1 && break; sleep 0.05; done
echo "== cocoonctl check";   ctl check
echo "== cocoonctl version"; ctl version

if [ -n "${COCOON_RUN_ONCE:-}" ]; then exit 0; fi
echo "== agent serving on $ADDR (pid $agent); Ctrl-C to stop"
wait $agent
