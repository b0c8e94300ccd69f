#!/usr/bin/env bash
# make bench: every benchmark of the project, in one run on one machine, so
# that ratios between the agent and the baselines are comparable. Results go
# to build/bench/*.txt; docs/benchmarks.md quotes them with this command.
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/bench
mkdir -p "$out"
BENCHTIME=${BENCHTIME:-1s}

echo "== Go benchmarks"
go test -run '^$' -bench . -benchmem -benchtime "$BENCHTIME" ./... | tee "$out/go.txt"

echo "== agent start-up, idle RSS, binary size"
ci/bench-agent.sh | tee "$out/agent.txt"
