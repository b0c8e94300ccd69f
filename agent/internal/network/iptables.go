package network

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/containerd/errdefs"
	"github.com/vishvananda/netns"

	"github.com/cocoon-tee/cocoon/internal/errs"
)

// MaxIPTablesData bounds the rules SetIPTables accepts (a ttrpc message
// cannot carry more anyway).
const MaxIPTablesData = 4 << 20

// restoreWait is how long iptables-restore waits for the xtables lock,
// and the margin added to the command's own deadline.
const restoreWait = 5 * time.Second

// toolDirs are searched in order; the agent may run as PID 1 with no PATH.
func toolDirs() []string { return []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} }

// IPTables runs iptables-save and iptables-restore (or the ip6tables
// variants) inside the Manager's network namespace.
type IPTables struct {
	ns netns.NsHandle
}

func findTool(name string) (string, error) {
	for _, d := range toolDirs() {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errs.Newf(errdefs.ErrFailedPrecondition, "%s is not installed in the guest (looked in %v)", name, toolDirs())
}

func toolName(base string, ipv6 bool) string {
	if ipv6 {
		return "ip6tables-" + base
	}
	return "iptables-" + base
}

// Get returns iptables-save's output.
func (t *IPTables) Get(ctx context.Context, ipv6 bool) ([]byte, error) {
	return t.run(ctx, toolName("save", ipv6), nil)
}

// Set feeds data to iptables-restore and returns its output.
func (t *IPTables) Set(ctx context.Context, ipv6 bool, data []byte) ([]byte, error) {
	if len(data) > MaxIPTablesData {
		return nil, errs.Newf(errdefs.ErrInvalidArgument, "iptables data is %d bytes, more than %d", len(data), MaxIPTablesData)
	}
	return t.run(ctx, toolName("restore", ipv6), data, "--wait", fmt.Sprint(int(restoreWait/time.Second)))
}

func (t *IPTables) run(ctx context.Context, name string, stdin []byte, args ...string) ([]byte, error) {
	path, err := findTool(name)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*restoreWait+10*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = []string{"PATH=/usr/sbin:/sbin:/usr/bin:/bin"}
	// The child is forked from a thread inside the namespace and so
	// inherits it; waiting can happen anywhere.
	if err := inNetns(t.ns, cmd.Start); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	if err := cmd.Wait(); err != nil {
		msg := bytes.TrimSpace(stderr.Bytes())
		if stdin != nil {
			// A rejected rule set is the host's input being wrong.
			return nil, errs.Newf(errdefs.ErrInvalidArgument, "%s failed: %v: %s", name, err, msg)
		}
		return nil, fmt.Errorf("%s failed: %w: %s", name, err, msg)
	}
	return stdout.Bytes(), nil
}
