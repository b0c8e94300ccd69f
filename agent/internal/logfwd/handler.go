package logfwd

import (
	"log/slog"
)

// Attach returns a logger that writes every record both where log writes
// and, as a JSON line in the runtime's level spelling, into f. In
// confidential mode the forwarded records pass through Redact.
func Attach(log *slog.Logger, f *Forwarder, level slog.Leveler, confidential bool) *slog.Logger {
	h := slog.NewJSONHandler(f, &slog.HandlerOptions{Level: level, ReplaceAttr: Replacer(confidential)})
	return slog.New(slog.NewMultiHandler(log.Handler(), h))
}

// Replacer is the ReplaceAttr of the forwarded records: levels in
// slog-rs's spelling and, when confidential, Redact.
func Replacer(confidential bool) func([]string, slog.Attr) slog.Attr {
	return func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && a.Key == slog.LevelKey {
			if l, ok := a.Value.Any().(slog.Level); ok {
				return slog.String(slog.LevelKey, KataLevel(l))
			}
		}
		if confidential {
			return Redact(groups, a)
		}
		return a
	}
}

// KataLevel spells l as slog-rs does, the only spelling runtime-rs
// recognises; any other string it logs at INFO
// (src/runtime-rs/crates/agent/src/log_forwarder.rs:12-18, 93-102).
func KataLevel(l slog.Level) string {
	switch {
	case l < slog.LevelInfo:
		return "DEBG"
	case l < slog.LevelWarn:
		return "INFO"
	case l < slog.LevelError:
		return "WARN"
	}
	return "ERRO"
}

// Redacted replaces the value of an attribute the host may not see.
const Redacted = "[redacted]"

// Redact is the confidential-mode filter for every log sink the host can
// read (the console and the log port). It keeps an attribute's value only
// when its key is one the agent uses for things the host already knows;
// any other value — and every key added later until someone decides
// otherwise — reads "[redacted]". docs/security.md ("Agent log forwarding")
// gives the reasoning key by key.
func Redact(groups []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindGroup || hostVisible(a.Key) {
		return a
	}
	return slog.String(a.Key, Redacted)
}

// hostVisible reports whether the agent logs only host-known values under
// key: what the host sent (ids, storage, image references, options), what
// it gets back anyway (rpc status codes and messages), start-up facts and
// settings from the image or initdata, which the host supplies or can
// measure. Not listed, on purpose: panic values and stacks (guest memory),
// Rego print output (policy state), and the attestation side's
// "attest_error", "what", "resource", "domain" and "operation" (which
// secrets and measurements the workload asks for, over its own channel:
// attestation errors say which, so they are not logged as "error").
func hostVisible(key string) bool {
	switch key {
	case slog.TimeKey, slog.LevelKey, slog.MessageKey,
		// the rpc line (agent/server/chain.go)
		"method", "duration", "container_id", "exec_id", "code", "error",
		// start-up: configuration, listeners, initdata and TEE
		"file", "confidential", "keys", "key", "addr", "version",
		"reason", "tee", "algorithm", "digest", "mode", "kbs", "expires",
		// policy installs and the decision log
		"source", "sha256", "allow_failures", "request", "kind", "fail_closed", "policy",
		// image pulls: references and digests the host named or can fetch
		"image", "resolved", "manifest", "verified_by", "layers", "downloaded", "layer", "attempt",
		// storages the host sent
		"driver", "fstype", "mount_point", "options", "device", "mapper", "integrity",
		"container", "labels",
		// host-shared layers: root hashes and devices the host sent, blocks of its disks
		"root_hash", "root_hashes", "dev", "mapping", "upper", "block", "block_type",
		// this package
		"dropped":
		return true
	}
	return false
}
