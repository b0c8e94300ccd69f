// Package conformance drives any Kata-compatible guest agent through its
// ttrpc API the way the Kata runtime does — one long-lived connection,
// blocking stream reads and waits running side by side, the runtime's call
// order — and checks the answers: exit statuses, stream contents, error
// codes, OOM events, and that nothing (mounts, zombies) is left behind.
//
// The suite plays the host's part too: it writes each container's
// busybox-static root file system where the runtime's shared file system
// would put it, <kata run dir>/shared/containers/<id>/rootfs, so it must run
// on a machine that sees the agent's file system (the agent on this host,
// or inside a VM sharing that directory).
package conformance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"time"

	"github.com/cocoon-tee/cocoon/tools/client"
)

// Config says which agent to test and how.
type Config struct {
	// Addr is the agent's address (unix://, vsock://, tcp://, hvsock://).
	Addr string
	// KataRunDir is the agent's Kata run directory as seen from here
	// (default /run/kata-containers).
	KataRunDir string
	// Busybox is a static busybox binary for the root file systems
	// (default /bin/busybox, Debian's busybox-static).
	Busybox string
	// Run selects scenarios by name; nil runs all. The sandbox set-up and
	// tear-down always run: every other scenario lives in that sandbox.
	Run *regexp.Regexp
	// Timeout bounds one scenario (default 2 minutes).
	Timeout time.Duration
	// Out receives one line per scenario; nil discards.
	Out io.Writer
	// Confidential adds the attack scenarios a confidential agent must
	// refuse (the attack/ group).
	Confidential bool
	// StateDir is the agent's own state directory as seen from here, which
	// the attack scenarios try to reach (default /run/cocoon).
	StateDir string
	// Runtime is the Kata runtime whose call order and request shapes the
	// suite plays: RuntimeGo (containerd-shim-kata-v2, the default) or
	// RuntimeRs (runtime-rs, kata-deploy's default shim since Kata 4.0).
	Runtime string
	// Policy, when set, is sent with SetPolicy before the sandbox exists,
	// as both runtimes do for the io.katacontainers.config.agent.policy
	// annotation.
	Policy string
}

// The runtimes Config.Runtime names.
const (
	RuntimeGo = "go"
	RuntimeRs = "rs"
)

// Scenario is one named check against the agent.
type Scenario struct {
	Name string
	// Always marks set-up and tear-down, which run whatever Run selects.
	Always bool
	Run    func(ctx context.Context, h *Harness) error
}

// Result is the outcome of one scenario.
type Result struct {
	Name     string
	Err      error
	Duration time.Duration
}

// Scenarios lists the suite in the order it runs for cfg: the sandbox is
// created first, containers come and go inside it, the attack scenarios
// follow for a confidential agent, and the sandbox is destroyed last.
func Scenarios(cfg Config) []Scenario {
	all := baseScenarios()
	last := all[len(all)-1]
	if cfg.Confidential {
		all = append(all[:len(all)-1], attackScenarios()...)
		all = append(all, last)
	}
	return all
}

func baseScenarios() []Scenario {
	return []Scenario{
		{Name: "pod/create-sandbox", Always: true, Run: createSandbox},
		{Name: "container/lifecycle", Run: containerLifecycle},
		{Name: "exec/no-tty", Run: execNoTTY},
		{Name: "exec/tty", Run: execTTY},
		{Name: "stdin/echo", Run: stdinEcho},
		{Name: "stdout/8MiB", Run: bigStdout},
		{Name: "exit/0", Run: exitCode(0)},
		{Name: "exit/3", Run: exitCode(3)},
		{Name: "exit/sigkill-137", Run: execSigkill},
		{Name: "exit/exec-sigterm-143", Run: execSigterm},
		{Name: "exit/init-sigterm-137", Run: initSigterm},
		{Name: "oom/32MiB-limit", Run: oom},
		{Name: "pause-resume", Run: pauseResume},
		{Name: "stats", Run: stats},
		{Name: "errors/unknown-container", Run: unknownContainer},
		{Name: "errors/unknown-exec", Run: unknownExec},
		{Name: "storage/ephemeral-volume", Run: ephemeralVolume},
		{Name: "storage/overlay-rootfs", Run: overlayRootfs},
		{Name: "storage/sandbox-shm", Run: sandboxShm},
		{Name: "pod/kubernetes-workload", Run: kubernetesWorkload},
		{Name: "stress/100-create-remove", Run: createRemoveCycles},
		{Name: "pod/destroy-sandbox", Always: true, Run: destroySandbox},
	}
}

// Run connects to the agent and runs the selected scenarios in order,
// writing one line per scenario and a final "N passed, M failed" line.
func Run(ctx context.Context, cfg Config) ([]Result, error) {
	cfg = withDefaults(cfg)
	if err := checkRuntime(cfg.Runtime); err != nil {
		return nil, err
	}
	h, err := NewHarness(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	var results []Result
	passed, failed := 0, 0
	for _, s := range Scenarios(cfg) {
		if !s.Always && cfg.Run != nil && !cfg.Run.MatchString(s.Name) {
			continue
		}
		r := RunOne(ctx, h, s, cfg.Timeout)
		results = append(results, r)
		if r.Err != nil {
			failed++
			fmt.Fprintf(cfg.Out, "FAIL  %-28s %6.2fs  %v\n", r.Name, r.Duration.Seconds(), r.Err)
		} else {
			passed++
			fmt.Fprintf(cfg.Out, "ok    %-28s %6.2fs\n", r.Name, r.Duration.Seconds())
		}
	}
	fmt.Fprintf(cfg.Out, "%d passed, %d failed\n", passed, failed)
	return results, nil
}

// RunOne runs one scenario with its own deadline.
// A timeout of 0 means the default, two minutes.
func RunOne(ctx context.Context, h *Harness, s Scenario, timeout time.Duration) Result {
	if timeout <= 0 {
		timeout = withDefaults(Config{}).Timeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	err := s.Run(ctx, h)
	if err == nil && ctx.Err() != nil {
		err = fmt.Errorf("scenario overran its %s deadline", timeout)
	}
	return Result{Name: s.Name, Err: err, Duration: time.Since(start)}
}

func withDefaults(cfg Config) Config {
	if cfg.KataRunDir == "" {
		cfg.KataRunDir = "/run/kata-containers"
	}
	if cfg.StateDir == "" {
		cfg.StateDir = "/run/cocoon"
	}
	if cfg.Busybox == "" {
		cfg.Busybox = "/bin/busybox"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Minute
	}
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	if cfg.Runtime == "" {
		cfg.Runtime = RuntimeGo
	}
	return cfg
}

func checkRuntime(r string) error {
	if r != RuntimeGo && r != RuntimeRs {
		return fmt.Errorf("conformance: runtime %q: want %q or %q", r, RuntimeGo, RuntimeRs)
	}
	return nil
}

// dial opens the suite's one long-lived connection, as the runtime keeps one.
func dial(ctx context.Context, addr string) (*client.Client, error) {
	if addr == "" {
		return nil, errors.New("conformance: no agent address")
	}
	return client.Dial(ctx, addr)
}
