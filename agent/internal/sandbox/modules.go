package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"

	"github.com/containerd/errdefs"

	"github.com/cocoon-tee/cocoon/internal/errs"
)

// Module is a kernel module CreateSandbox asks to load, with its parameters.
type Module struct {
	Name       string
	Parameters []string
}

// loadModule runs modprobe for one requested kernel module. Names and
// parameters are checked first: they end up on modprobe's command line and
// must not be mistaken for its options.
func loadModule(ctx context.Context, m *Module) error {
	if m == nil || m.Name == "" {
		return errdefs.ErrInvalidArgument.WithMessage("kernel module without a name")
	}
	if !validModuleWord(m.Name) {
		return errs.Newf(errdefs.ErrInvalidArgument, "kernel module name %q is malformed", m.Name)
	}
	args := []string{"--", m.Name}
	for _, p := range m.Parameters {
		if !validModuleWord(p) {
			return errs.Newf(errdefs.ErrInvalidArgument, "kernel module %s: parameter %q is malformed", m.Name, p)
		}
		args = append(args, p)
	}
	tool, err := exec.LookPath("modprobe")
	if err != nil {
		return errs.Newf(errdefs.ErrFailedPrecondition, "kernel module %s: modprobe is not installed in the guest", m.Name)
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, tool, args...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return errs.Newf(errdefs.ErrFailedPrecondition, "kernel module %s: %s", m.Name, strings.TrimSpace(stderr.String()))
		}
		return fmt.Errorf("kernel module %s: %w", m.Name, err)
	}
	return nil
}

func validModuleWord(s string) bool {
	return s != "" && len(s) <= 256 && !strings.HasPrefix(s, "-") && !strings.ContainsAny(s, "/\x00\n ")
}
