package network

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"

	"github.com/cocoon-tee/cocoon/internal/errs"
)

// maxNameLen is IFNAMSIZ minus the terminating NUL.
const maxNameLen = 15

// MTU bounds: 68 is the IPv4 minimum (RFC 791), 65535 the largest the
// netlink attribute can carry for a real device.
const (
	minMTU = 68
	maxMTU = 65535
)

func invalid(format string, a ...any) error {
	return errs.Newf(errdefs.ErrInvalidArgument, format, a...)
}

// checkLinkName rejects names the kernel would refuse or misread.
func checkLinkName(name string) error {
	switch {
	case name == "":
		return invalid("interface name is empty")
	case len(name) > maxNameLen:
		return invalid("interface name %q is longer than %d bytes", name, maxNameLen)
	case name == "." || name == "..":
		return invalid("interface name %q is not allowed", name)
	case strings.ContainsAny(name, "/: \t\n\x00"):
		return invalid("interface name %q contains '/', ':', NUL or white space", name)
	}
	return nil
}

// parseMAC accepts the colon-separated 6-byte form the runtime sends.
func parseMAC(s string) (net.HardwareAddr, error) {
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return nil, invalid("invalid MAC address %q", s)
	}
	return hw, nil
}

// parseAddress turns an IPAddress into an IPNet. The mask is a prefix
// length ("24", what the runtime sends) or a dotted IPv4 netmask.
func parseAddress(a *IPAddress) (*net.IPNet, error) {
	if a == nil {
		return nil, invalid("IP address is null")
	}
	ip := net.ParseIP(a.Address)
	if ip == nil {
		return nil, invalid("invalid IP address %q", a.Address)
	}
	bits := 128
	if v4 := ip.To4(); v4 != nil {
		ip, bits = v4, 32
	}
	if (bits == 32) != (a.Family == FamilyV4) {
		return nil, invalid("IP address %q does not match family %v", a.Address, a.Family)
	}
	ones, err := parseMask(a.Mask, bits)
	if err != nil {
		return nil, fmt.Errorf("address %s: %w", a.Address, err)
	}
	return &net.IPNet{IP: ip, Mask: net.CIDRMask(ones, bits)}, nil
}

func parseMask(s string, bits int) (int, error) {
	if s == "" {
		return bits, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 || n > bits {
			return 0, invalid("prefix length %d out of range 0-%d", n, bits)
		}
		return n, nil
	}
	if bits == 32 {
		if m := net.ParseIP(s).To4(); m != nil {
			ones, b := net.IPMask(m).Size()
			if b == 32 {
				return ones, nil
			}
		}
	}
	return 0, invalid("invalid netmask %q", s)
}

// parseDest reads a route destination: "" or "default" is the default route
// of the family; Kata lists a default route as a bare "0.0.0.0" (or "::"),
// which is read back the same way rather than as a host route to 0.0.0.0;
// a bare address is a host route.
func parseDest(s string, fam Family) (*net.IPNet, error) {
	switch s {
	case "", "default":
		if fam == FamilyV6 {
			return &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}, nil
		}
		return &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, nil
	case "0.0.0.0":
		return &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, nil
	case "::":
		return &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}, nil
	}
	if strings.Contains(s, "/") {
		_, n, err := net.ParseCIDR(s)
		if err != nil {
			return nil, invalid("invalid route destination %q", s)
		}
		return n, nil
	}
	ip := net.ParseIP(s)
	if ip == nil {
		return nil, invalid("invalid route destination %q", s)
	}
	if v4 := ip.To4(); v4 != nil {
		return &net.IPNet{IP: v4, Mask: net.CIDRMask(32, 32)}, nil
	}
	return &net.IPNet{IP: ip, Mask: net.CIDRMask(128, 128)}, nil
}

// parseIP reads a gateway or preferred source: a bare address, or an
// address with a prefix length whose address part is used.
func parseIP(what, s string) (net.IP, error) {
	if i := strings.IndexByte(s, '/'); i >= 0 {
		if _, _, err := net.ParseCIDR(s); err != nil {
			return nil, invalid("invalid route %s %q", what, s)
		}
		s = s[:i]
	}
	ip := net.ParseIP(s)
	if ip == nil {
		return nil, invalid("invalid route %s %q", what, s)
	}
	if v4 := ip.To4(); v4 != nil {
		return v4, nil
	}
	return ip, nil
}

func is4(ip net.IP) bool { return len(ip) == net.IPv4len }
