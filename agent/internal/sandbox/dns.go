package sandbox

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/internal/errs"
)

// Bounds on CreateSandbox's dns list. The Go runtime sends every line of
// the pod's resolv.conf, blank ones included (virtcontainers/kata_agent.go
// getDNS splits the file on "\n"); kubelet writes at most 3 nameservers and
// 32 search domains of 2048 bytes in all.
const (
	maxDNSLines    = 64
	maxDNSLineLen  = 2048
	maxDNSFileSize = 16 << 10
)

// resolvConf builds the pod's resolv.conf from the runtime's lines
// ("nameserver 10.0.0.10", "search ns.svc.cluster.local", "options
// ndots:5"). Blank lines and comments, which a copied node resolv.conf
// carries, are dropped; any other keyword, and any value a resolver would
// misread, is INVALID_ARGUMENT, so the host cannot smuggle lines into the
// file the guest's own resolver and the image puller read.
func resolvConf(lines []string) ([]byte, error) {
	if len(lines) > maxDNSLines {
		return nil, errs.Newf(errdefs.ErrInvalidArgument, "%d dns lines, more than %d", len(lines), maxDNSLines)
	}
	var b strings.Builder
	for i, l := range lines {
		out, err := dnsLine(l)
		if err != nil {
			return nil, errs.Newf(errdefs.ErrInvalidArgument, "dns line %d: %v", i, err)
		}
		if out != "" {
			b.WriteString(out)
			b.WriteByte('\n')
		}
	}
	if b.Len() > maxDNSFileSize {
		return nil, errs.Newf(errdefs.ErrInvalidArgument, "dns lines make %d bytes, more than %d", b.Len(), maxDNSFileSize)
	}
	return []byte(b.String()), nil
}

// dnsLine checks one line and returns it normalised ("" to drop it).
func dnsLine(l string) (string, error) {
	if len(l) > maxDNSLineLen {
		return "", fmt.Errorf("%d bytes, more than %d", len(l), maxDNSLineLen)
	}
	for _, c := range l {
		// Tabs separate fields; every other control byte (NUL, CR, LF) would
		// end or split the line for some reader.
		if c != '\t' && (c < 0x20 || c == 0x7f) {
			return "", fmt.Errorf("%q holds a control character", l)
		}
	}
	f := strings.Fields(l)
	if len(f) == 0 || strings.HasPrefix(f[0], "#") || strings.HasPrefix(f[0], ";") {
		return "", nil
	}
	if len(f) == 1 {
		return "", fmt.Errorf("%q has no value", l)
	}
	switch f[0] {
	case "nameserver":
		if len(f) != 2 {
			return "", fmt.Errorf("%q: one address per nameserver line", l)
		}
		if _, err := netip.ParseAddr(f[1]); err != nil {
			return "", fmt.Errorf("%q: not an IP address", l)
		}
	case "search", "domain":
		// "domain" is the older single-entry form a node's file may carry.
		if f[0] == "domain" && len(f) != 2 {
			return "", fmt.Errorf("%q: one name per domain line", l)
		}
		for _, d := range f[1:] {
			if !validDomain(d) {
				return "", fmt.Errorf("%q: %q is not a domain name", l, d)
			}
		}
	case "options":
		for _, o := range f[1:] {
			if !validOption(o) {
				return "", fmt.Errorf("%q: %q is not a resolver option", l, o)
			}
		}
	default:
		return "", fmt.Errorf("%q: only nameserver, search, domain and options lines are allowed", l)
	}
	return strings.Join(f, " "), nil
}

// validDomain accepts host names as resolvers do: labels of letters, digits,
// '-' and '_', an optional trailing dot.
func validDomain(d string) bool {
	d = strings.TrimSuffix(d, ".")
	if d == "" || len(d) > 253 {
		return false
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, c := range label {
			if !isAlnum(c) && c != '-' && c != '_' {
				return false
			}
		}
	}
	return true
}

// validOption accepts "name" or "name:number" (ndots:5, timeout:2, rotate,
// edns0, single-request-reopen, ...).
func validOption(o string) bool {
	name, val, hasVal := strings.Cut(o, ":")
	if name == "" || len(o) > 64 {
		return false
	}
	for _, c := range name {
		if !isAlnum(c) && c != '-' && c != '_' {
			return false
		}
	}
	if !hasVal {
		return true
	}
	if val == "" {
		return false
	}
	for _, c := range val {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func isAlnum(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// bindResolvConf puts the pod's resolv.conf over the guest's resolver file,
// as Kata's agent does (src/agent/src/network.rs do_setup_guest_dns binds
// its copy over /etc/resolv.conf), so the image puller and a KBS named by
// host name resolve through the pod's DNS. The target is created when
// missing; a directory there is an error. The bind is read-only: nothing in
// the guest rewrites it behind the pod's back.
func bindResolvConf(src, target string) error {
	st, err := os.Stat(target)
	switch {
	case errors.Is(err, os.ErrNotExist):
		f, cerr := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o644)
		if cerr != nil {
			return errs.Newf(errdefs.ErrFailedPrecondition, "guest resolver file %s is missing and cannot be created: %v", target, cerr)
		}
		f.Close()
	case err != nil:
		return fmt.Errorf("guest resolver file %s: %w", target, err)
	case st.IsDir():
		return errs.Newf(errdefs.ErrFailedPrecondition, "guest resolver file %s is a directory", target)
	}
	if err := unix.Mount(src, target, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s over %s: %w", src, target, err)
	}
	if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return errors.Join(fmt.Errorf("make %s read-only: %w", target, err), unix.Unmount(target, unix.MNT_DETACH))
	}
	return nil
}

// unbindResolvConf undoes bindResolvConf; a target with nothing bound on
// it is fine.
func unbindResolvConf(target string) error {
	if err := unix.Unmount(target, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unbind %s: %w", target, err)
	}
	return nil
}
