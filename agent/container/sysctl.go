package container

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/opencontainers/runc/libcontainer/configs"
	"golang.org/x/sys/unix"
)

// maxSysctlValue bounds one value from the host; the longest net.* values
// (port ranges, group ranges) are a few dozen bytes.
const maxSysctlValue = 4096

// sysctlComponent reports whether p can be one dotted part of a net.* key:
// 1 to 64 letters, digits, '_' or '-', the characters of kernel names
// (interface names with a '.' cannot be told apart in the dotted form and
// are refused). A loop, not a package-level regexp: this package's
// initialisation runs again in every container init (see init.go).
func sysctlComponent(p string) bool {
	if len(p) == 0 || len(p) > 64 {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// netSysctlPath maps a dotted net.* key to its file under /proc/sys/net.
func netSysctlPath(key string) (string, error) {
	rest, ok := strings.CutPrefix(key, "net.")
	if !ok || len(key) > 256 {
		return "", invalid(fmt.Sprintf("sysctl %q is not a net.* key", key))
	}
	parts := strings.Split(rest, ".")
	for _, p := range parts {
		if !sysctlComponent(p) {
			return "", invalid(fmt.Sprintf("sysctl %q: bad component %q", key, p))
		}
	}
	return "/proc/sys/net/" + strings.Join(parts, "/"), nil
}

// applyNetSysctls writes the spec's net.* sysctls into the network
// namespace the agent runs in and takes them out of cfg. A container has no
// network namespace of its own here — the guest's is the pod's, which is why
// the runtime drops the one in the spec — so libcontainer would refuse
// containerd's default pod sysctls (net.ipv4.ip_unprivileged_port_start,
// net.ipv4.ping_group_range) as "not allowed in host network namespace".
// Kata's validator lets net.* through for the same reason
// (rustjail/src/validator.rs). Every file is opened before any is written,
// so a bad key changes nothing.
func applyNetSysctls(cfg *configs.Config) error {
	type pending struct {
		key, value string
		f          *os.File
	}
	var todo []pending
	defer func() {
		for _, p := range todo {
			p.f.Close()
		}
	}()
	for key, value := range cfg.Sysctl {
		if !strings.HasPrefix(key, "net.") {
			continue
		}
		p, err := netSysctlPath(key)
		if err != nil {
			return err
		}
		if len(value) > maxSysctlValue || strings.ContainsRune(value, 0) {
			return invalid(fmt.Sprintf("sysctl %q: value longer than %d bytes or with a NUL", key, maxSysctlValue))
		}
		f, err := os.OpenFile(p, os.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return invalid(fmt.Sprintf("sysctl %q does not exist in the guest", key))
			}
			return fmt.Errorf("sysctl %q: %w", key, err)
		}
		todo = append(todo, pending{key: key, value: value, f: f})
	}
	for _, p := range todo {
		if _, err := p.f.WriteString(p.value); err != nil {
			return invalid(fmt.Sprintf("sysctl %q = %q: %v", p.key, p.value, err))
		}
		delete(cfg.Sysctl, p.key)
	}
	return nil
}
