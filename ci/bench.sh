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
go test -tags "${GOTAGS:-containers_image_openpgp,seccomp}" -run '^$' -bench . -benchmem -benchtime "$BENCHTIME" ./... | tee "$out/go.txt"

echo "== agent start-up, idle RSS, binary size"
ci/bench-agent.sh | tee "$out/agent.txt"

echo "== containers: agent vs runc, ReadStdout vs a bare pipe (from the Go benchmarks above)"
awk '
	/^BenchmarkRunTrueInterleaved/ { for (i = 1; i <= NF; i++) { if ($i == "agent-ms/op") agent = $(i-1) * 1e6; if ($i == "runc-ms/op") runc = $(i-1) * 1e6 } }
	/^BenchmarkReadStdout/     { for (i = 1; i <= NF; i++) if ($i == "MB/s") rs = $(i-1) }
	/^BenchmarkReadPipeDirect/ { for (i = 1; i <= NF; i++) if ($i == "MB/s") rp = $(i-1) }
	END {
		if (agent && runc) printf "create+start+wait+remove /bin/true: agent %.1f ms, runc run %.1f ms, ratio %.2f (goal <= 0.6)\n", agent/1e6, runc/1e6, agent/runc
		if (rs && rp) printf "stdout, 32 KiB reads: ReadStdout %.0f MB/s, bare pipe %.0f MB/s, ratio %.3f (goal >= 500 MB/s)\n", rs, rp, rs/rp
	}' "$out/go.txt" | tee "$out/containers.txt"

echo "== ReadStdout against bare ttrpc, both in their own processes, and sealed logs (agent/rpc benchmarks above)"
awk '
	/^BenchmarkReadStdoutAgentProcess/ { for (i = 1; i <= NF; i++) { if ($i == "MB/s") ag = $(i-1); if ($i == "ceiling-MB/s") ce = $(i-1); if ($i == "agent/ceiling") r = $(i-1); if ($i == "agent-cpu-µs/op") cpu = $(i-1); if ($i == "ceiling-cpu-µs/op") ccpu = $(i-1) } }
	/^BenchmarkReadStdoutSealed\/sealed/ { for (i = 1; i <= NF; i++) if ($i == "sealed/plain") sp = $(i-1) }
	END {
		if (ag) printf "ReadStdout (agent in its own process) %.0f MB/s, %.0f µs CPU per read; bare ttrpc in its own process %.0f MB/s, %.0f µs; agent/ceiling %.2f (goal >= 0.9)\n", ag, cpu, ce, ccpu, r
		if (sp) printf "sealed logs: sealed/plain %.2f in plaintext bytes (goal >= 0.9)\n", sp
	}
' "$out/go.txt" | tee -a "$out/containers.txt"

echo "== policy benchmarks against Kata's genpolicy rules (KATA_REPO=path to a Kata Containers checkout)"
if [ -n "${KATA_REPO:-}" ]; then
	ci/kata-compat.sh "$KATA_REPO" -run '^$' -bench . -benchmem -benchtime "$BENCHTIME" | tee -a "$out/go.txt"
else
	echo "skipped: KATA_REPO is not set"
fi
echo "== policy: genpolicy-scale CreateContainer decision through the gate"
awk '
	/^BenchmarkGateCreateContainer-/ { for (i = 1; i <= NF; i++) { if ($i == "p50-µs") p50 = $(i-1); if ($i == "cpu-µs/op") cpu = $(i-1) } }
	END { if (p50) printf "gate p50 %.0f µs (goal <= 100 µs), %.0f µs CPU; share of a ~50 ms CreateContainer %.1f %% (goal < 5 %%)\n", p50, cpu, p50 / 500 }
' "$out/go.txt" | tee "$out/policy.txt"

echo "== policy: CreateContainer under a generated policy, stream-class decisions"
awk '
	/^BenchmarkCreateContainerDecision/ { for (i = 1; i <= NF; i++) if ($i == "p50-µs") cc = $(i-1) }
	/^BenchmarkGateReadStdout\/logged/ { for (i = 1; i <= NF; i++) if ($i == "p50-µs") rs = $(i-1) }
	/^BenchmarkGateWaitProcess/ { for (i = 1; i <= NF; i++) if ($i == "p50-µs") wp = $(i-1) }
	END {
		if (cc) printf "CreateContainer decision under the generated policy: p50 %.0f µs (goal <= 300 µs)\n", cc
		if (rs) printf "ReadStdout decision with its decision-log line: p50 %.2f µs (goal <= 3 µs)\n", rs
		if (wp) printf "WaitProcess decision: p50 %.2f µs\n", wp
	}
' "$out/go.txt" | tee -a "$out/policy.txt"

echo "== image pull: ~150 MB image, agent puller vs skopeo copy + umoci unpack"
ci/bench-image.sh | tee "$out/image.txt"
