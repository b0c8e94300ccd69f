package policy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"

	"github.com/cocoon-tee/cocoon/policy/decisionlog"
)

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
	// Initdata, when not nil, is the policy.rego of the pod's initdata;
	// it takes precedence over the file. The caller extracts it: the
	// policy package does not read initdata.
	Initdata *Text
	// ReadFile reads the policy file (default os.ReadFile).
	ReadFile func(string) ([]byte, error)
	// DecisionLogMaxBytes is the size at which the decision log rotates
	// (0: the log's default).
	DecisionLogMaxBytes int64
	// Measurer, when set, records in the runtime measurement log the
	// policy Boot starts with, every policy SetPolicy installs, and the
	// decision log's head: before the log rotates (rotation does not
	// happen unless it succeeds) and after SetPolicy.
	Measurer Measurer
}

// Text is a policy's Rego source and where it came from, as logs and the
// decision log name it (for initdata "initdata:<digest>").
type Text struct {
	Rego, Source string
}

// Boot builds the engine the agent starts with. Sources, lowest first: the
// built-in default (coco-default in confidential mode, allow-all otherwise),
// the default policy file, and initdata's policy.rego. Later sources replace
// earlier ones; SetPolicy may replace the result at run time if it allows.
// The policy in force is measured before Boot returns: nothing is served
// under a policy a verifier cannot see.
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
		log.WarnContext(ctx, "policy source ignored, keeping the previous one", "error", err, "policy", p.source)
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

	if t := bc.Initdata; t != nil {
		if q, err := Load(ctx, t.Rego, t.Source); err == nil {
			p = q
		} else if err := fail(fmt.Errorf("initdata policy.rego: %w", err)); err != nil {
			return nil, err
		}
	}

	var dlog *decisionlog.Log
	if bc.DecisionLog != "" {
		o := decisionlog.Options{MaxBytes: bc.DecisionLogMaxBytes, Strict: bc.Confidential}
		if bc.Measurer != nil {
			o.OnRotate = bc.Measurer.RecordDecisionHead
		}
		if dlog, err = decisionlog.Open(bc.DecisionLog, o); err != nil {
			if bc.Confidential {
				return nil, fmt.Errorf("confidential mode refuses to start: %w", err)
			}
			log.WarnContext(ctx, "decision log disabled", "error", err)
			dlog = nil
		}
	}
	e, err := newEngine(p, EngineOptions{Decisions: dlog, Log: log, Confidential: bc.Confidential, Measurer: bc.Measurer})
	if err != nil && bc.Confidential {
		e.Close()
		return nil, fmt.Errorf("confidential mode refuses to start: the first policy cannot be recorded: %w", err)
	}
	if bc.Measurer != nil {
		if err := bc.Measurer.RecordPolicyLoad(p.digest); err != nil {
			e.Close()
			return nil, err
		}
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
