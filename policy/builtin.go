package policy

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sort"
	"strings"

	"github.com/cocoon-tee/cocoon/agent/initdata"
	"github.com/cocoon-tee/cocoon/policy/decisionlog"
)

// Policies shipped in the agent binary (also installed in the rootfs).
const (
	AllowAll            = "allow-all"
	AllowAllExceptExec  = "allow-all-except-exec"
	CocoDefault         = "coco-default"
	DefaultPolicyFile   = "/etc/kata-opa/default-policy.rego"
	builtinSourcePrefix = "builtin:"
)

//go:embed rego/*.rego
var shipped embed.FS

// Builtin returns the text of a shipped policy.
func Builtin(name string) (string, error) {
	b, err := shipped.ReadFile("rego/" + name + ".rego")
	if err != nil {
		return "", fmt.Errorf("no built-in policy %q (have %s)", name, strings.Join(BuiltinNames(), ", "))
	}
	return string(b), nil
}

// BuiltinNames lists the shipped policies.
func BuiltinNames() []string {
	ents, _ := fs.ReadDir(shipped, "rego")
	var names []string
	for _, e := range ents {
		names = append(names, strings.TrimSuffix(e.Name(), ".rego"))
	}
	sort.Strings(names)
	return names
}

// BootConfig says where the agent's first policy comes from.
type BootConfig struct {
	// PolicyFile is the configured default policy file; empty means
	// DefaultPolicyFile, used only when it exists.
	PolicyFile string
	// DecisionLog is the decision log path; empty disables the log.
	DecisionLog string
	// Confidential turns every failure to load a configured policy (or the
	// decision log) into a start-up error instead of a fallback.
	Confidential bool
	// Initdata, when not nil and holding policy.rego, supplies the policy
	// that takes precedence over the file.
	Initdata *initdata.Initdata
	// ReadFile reads the policy file (default os.ReadFile).
	ReadFile func(string) ([]byte, error)
	// DecisionLogMaxBytes is the size at which the decision log rotates
	// (0: the log's default).
	DecisionLogMaxBytes int64
	// MeasureHead, when set, records the decision log's head in the
	// runtime measurement log: before the log rotates (rotation does not
	// happen unless it succeeds) and after SetPolicy installs a policy.
	MeasureHead func(head string) error
}

// Boot builds the engine the agent starts with. Sources, lowest first: the
// built-in default (coco-default in confidential mode, allow-all otherwise),
// the default policy file, and initdata's policy.rego. Later sources replace
// earlier ones; SetPolicy may replace the result at run time if it allows.
func Boot(ctx context.Context, bc BootConfig, log *slog.Logger) (*Engine, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if bc.ReadFile == nil {
		bc.ReadFile = os.ReadFile
	}
	base := AllowAll
	if bc.Confidential {
		base = CocoDefault
	}
	text, err := Builtin(base)
	if err != nil {
		return nil, err
	}
	p, err := Load(ctx, text, builtinSourcePrefix+base)
	if err != nil {
		return nil, fmt.Errorf("built-in policy %s: %w", base, err)
	}

	// fail reports a source that did not load: fatal in confidential mode.
	fail := func(err error) error {
		if bc.Confidential {
			return fmt.Errorf("confidential mode refuses to start: %w", err)
		}
		log.Warn("policy source ignored, keeping the previous one", "error", err, "policy", p.source)
		return nil
	}

	path, explicit := bc.PolicyFile, bc.PolicyFile != ""
	if !explicit {
		path = DefaultPolicyFile
	}
	if b, err := bc.ReadFile(path); err == nil {
		if q, err := Load(ctx, string(b), "file:"+path); err == nil {
			p = q
		} else if err := fail(fmt.Errorf("policy file %s: %w", path, err)); err != nil {
			return nil, err
		}
	} else if explicit || !errors.Is(err, fs.ErrNotExist) {
		if err := fail(fmt.Errorf("policy file: %w", err)); err != nil {
			return nil, err
		}
	}

	if bc.Initdata != nil {
		if text, ok := bc.Initdata.Policy(); ok {
			if q, err := Load(ctx, text, "initdata:"+bc.Initdata.DigestHex()); err == nil {
				p = q
			} else if err := fail(fmt.Errorf("initdata policy.rego: %w", err)); err != nil {
				return nil, err
			}
		}
	}

	var dlog *decisionlog.Log
	if bc.DecisionLog != "" {
		o := decisionlog.Options{MaxBytes: bc.DecisionLogMaxBytes, Strict: bc.Confidential, OnRotate: bc.MeasureHead}
		if dlog, err = decisionlog.Open(bc.DecisionLog, o); err != nil {
			if bc.Confidential {
				return nil, fmt.Errorf("confidential mode refuses to start: %w", err)
			}
			log.Warn("decision log disabled", "error", err)
			dlog = nil
		}
	}
	e, err := newEngine(p, EngineOptions{Decisions: dlog, Log: log, Confidential: bc.Confidential, MeasureHead: bc.MeasureHead})
	if err != nil && bc.Confidential {
		e.Close()
		return nil, fmt.Errorf("confidential mode refuses to start: the first policy cannot be recorded: %w", err)
	}
	return e, nil
}

// Close releases the decision log.
func (e *Engine) Close() error {
	if e.dlog == nil {
		return nil
	}
	return e.dlog.Close()
}
