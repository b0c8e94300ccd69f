#!/usr/bin/env bash
# make run: start cocoon-agent on a local unix socket and drive a real pod
# through it with cocoonctl, the calls in the order the Kata runtime makes
# them: sandbox, pause container, a busybox workload whose output is read
# back, an exec, removal, sandbox destroy. Then the agent keeps serving until
# Ctrl-C (COCOON_RUN_ONCE=1 stops after the pod).
set -euo pipefail
cd "$(dirname "$0")/.."

ADDR=${COCOON_ADDR:-unix:///run/cocoon/agent.sock}
# The agent's Kata run directory: the script plays the host's shared file
# system and writes container root file systems under it.
RUN=${COCOON_RUN_DIR:-/run/cocoon/run-local}
KATA=$RUN/kata-containers
SANDBOX=demo-pod
WORKLOAD=demo-hello

ctl() { bin/cocoonctl --addr "$ADDR" "$@"; }
call() { ctl call "$@"; }

# rootfs DIR: a busybox-static root file system.
rootfs() {
	local dir=$1
	mkdir -p "$dir"/{bin,etc,proc,sys,dev,tmp,root}
	cp /bin/busybox "$dir/bin/busybox"
	for applet in $(/bin/busybox --list); do
		[ "$applet" = busybox ] || ln -sf busybox "$dir/bin/$applet"
	done
	echo 'root:x:0:0:root:/root:/bin/sh' >"$dir/etc/passwd"
	echo 'root:x:0:' >"$dir/etc/group"
}

# spec CID ARGS-JSON: the OCI spec the runtime would send, as protojson.
spec() {
	cat <<EOF
{"Version": "1.1.0",
 "Process": {"Args": $2, "Env": ["PATH=/bin:/sbin"], "Cwd": "/", "User": {"UID": 0, "GID": 0}},
 "Root": {"Path": "$KATA/shared/containers/$1/rootfs"},
 "Hostname": "$SANDBOX",
 "Mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["ro", "nosuid", "nodev", "noexec"]}],
 "Linux": {"Namespaces": [{"Type": "pid"}, {"Type": "ipc"}, {"Type": "uts"}, {"Type": "mount"}]}}
EOF
}

# read_stream CID EXEC: ReadStdout with 32 KiB reads until empty data (EOF).
read_stream() {
	local out data
	while out=$(call ReadStdout --json "{\"container_id\": \"$1\", \"exec_id\": \"$2\", \"len\": 32768}" 2>/dev/null); do
		data=$(sed -n 's/^ *"data": *"\(.*\)".*/\1/p' <<<"$out")
		[ -n "$data" ] || break
		base64 -d <<<"$data"
	done
}

# A previous run killed mid-pod may have left mounts below $RUN; unmount them
# before deleting, so that rm never reaches into a mounted file system.
awk -v run="$RUN" '$5 == run || index($5, run "/") == 1 { print $5 }' /proc/self/mountinfo |
	sort -r | while read -r mp; do umount -l "$mp"; done
rm -rf "$RUN"
mkdir -p "$RUN" "$KATA"
cat >"$RUN/agent.toml" <<EOF
kata_run_dir = "$KATA"
state_dir = "$RUN/state"
decision_log = "$RUN/decisions.log"
EOF

KATA_AGENT_SERVER_ADDR=$ADDR bin/cocoon-agent --config "$RUN/agent.toml" 2>"$RUN/agent.log" &
agent=$!
trap 'kill -TERM $agent 2>/dev/null; wait $agent 2>/dev/null || true' EXIT INT TERM

for _ in $(seq 100); do ctl --timeout 1s check >/dev/null 2>&1 && break; sleep 0.05; done
echo "== cocoonctl check";   ctl check
echo "== cocoonctl version"; ctl version

echo "== CreateSandbox $SANDBOX"
call CreateSandbox --json "{\"hostname\": \"$SANDBOX\", \"sandbox_id\": \"$SANDBOX\"}" >/dev/null

echo "== pause container (exec_id = container id)"
rootfs "$KATA/shared/containers/$SANDBOX/rootfs"
call CreateContainer --json "{\"container_id\": \"$SANDBOX\", \"exec_id\": \"$SANDBOX\", \"OCI\": $(spec $SANDBOX '["/bin/sleep", "1000000"]')}" >/dev/null
call StartContainer --json "{\"container_id\": \"$SANDBOX\"}" >/dev/null

echo "== workload container $WORKLOAD"
rootfs "$KATA/shared/containers/$WORKLOAD/rootfs"
call CreateContainer --json "{\"container_id\": \"$WORKLOAD\", \"exec_id\": \"$WORKLOAD\", \"OCI\": $(spec $WORKLOAD '["/bin/sh", "-c", "echo hello from a cocoon container; sleep 1000000"]')}" >/dev/null
call StartContainer --json "{\"container_id\": \"$WORKLOAD\"}" >/dev/null
# The workload keeps running; read its first line.
out=$(call ReadStdout --json "{\"container_id\": \"$WORKLOAD\", \"exec_id\": \"$WORKLOAD\", \"len\": 32768}")
echo "workload stdout: $(sed -n 's/^ *"data": *"\(.*\)".*/\1/p' <<<"$out" | base64 -d)"

echo "== exec into $WORKLOAD"
call ExecProcess --json "{\"container_id\": \"$WORKLOAD\", \"exec_id\": \"exec-1\",
  \"process\": {\"Args\": [\"/bin/sh\", \"-c\", \"echo exec sees hostname \$(hostname), pid 1 is \$(cat /proc/1/comm)\"], \"Env\": [\"PATH=/bin\"], \"Cwd\": \"/\", \"User\": {}}}" >/dev/null
echo "exec stdout: $(read_stream "$WORKLOAD" exec-1)"
echo "exec exit status: $(call WaitProcess --json "{\"container_id\": \"$WORKLOAD\", \"exec_id\": \"exec-1\"}" | sed -n 's/^ *"status": *\(.*\)/\1/p')"

echo "== stop and remove $WORKLOAD and the pause container"
for c in "$WORKLOAD" "$SANDBOX"; do
	call SignalProcess --json "{\"container_id\": \"$c\", \"exec_id\": \"\", \"signal\": 9}" >/dev/null
	echo "$c exit status: $(call WaitProcess --json "{\"container_id\": \"$c\", \"exec_id\": \"$c\"}" | sed -n 's/^ *"status": *\(.*\)/\1/p')"
	call RemoveContainer --json "{\"container_id\": \"$c\", \"timeout\": 0}" >/dev/null
	rm -rf "${KATA:?}/shared/containers/$c"
done

echo "== DestroySandbox"
call DestroySandbox >/dev/null
echo "pod done; agent log: $RUN/agent.log"

if [ -n "${COCOON_RUN_ONCE:-}" ]; then exit 0; fi
echo "== agent serving on $ADDR (pid $agent); Ctrl-C to stop"
wait $agent
