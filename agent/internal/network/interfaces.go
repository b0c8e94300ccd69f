package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/internal/errs"
)

// maxAddresses bounds how many addresses one request may set.
const maxAddresses = 256

// errLinkNotFound keeps Kata's wording: the runtime retries UpdateInterface
// while the error text contains "Link not found" (the NIC is still being
// hot-plugged).
func errLinkNotFound(filter string) error {
	return fmt.Errorf("Link not found (%s): %w", filter, errdefs.ErrNotFound)
}

// interfaceRequest is a validated UpdateInterface request.
type interfaceRequest struct {
	hw    net.HardwareAddr
	name  string
	mtu   int
	addrs []*net.IPNet
	noARP bool
}

func checkInterface(iface *Interface) (interfaceRequest, error) {
	var r interfaceRequest
	if iface == nil {
		return r, invalid("empty update interface request")
	}
	if iface.HwAddr == "" && iface.Name == "" {
		return r, invalid("interface has neither hwAddr nor name")
	}
	if iface.HwAddr != "" {
		hw, err := parseMAC(iface.HwAddr)
		if err != nil {
			return r, err
		}
		r.hw = hw
	}
	if iface.Name != "" {
		if err := checkLinkName(iface.Name); err != nil {
			return r, err
		}
		r.name = iface.Name
	}
	if m := iface.MTU; m != 0 {
		if m < minMTU || m > maxMTU {
			return r, invalid("MTU %d out of range %d-%d", m, minMTU, maxMTU)
		}
		r.mtu = int(m)
	}
	if len(iface.IPAddresses) > maxAddresses {
		return r, invalid("%d IP addresses, more than %d", len(iface.IPAddresses), maxAddresses)
	}
	for _, a := range iface.IPAddresses {
		n, err := parseAddress(a)
		if err != nil {
			return r, err
		}
		r.addrs = append(r.addrs, n)
	}
	r.noARP = iface.RawFlags&unix.IFF_NOARP != 0
	return r, nil
}

// findLink looks a link up by hardware address, else by name.
func (m *Manager) findLink(hw net.HardwareAddr, name string) (netlink.Link, error) {
	if hw == nil {
		l, err := m.h.LinkByName(name)
		if err != nil {
			return nil, errLinkNotFound("Name: " + name)
		}
		return l, nil
	}
	links, err := m.h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	for _, l := range links {
		if strings.EqualFold(l.Attrs().HardwareAddr.String(), hw.String()) {
			return l, nil
		}
	}
	return nil, errLinkNotFound("Address: " + hw.String())
}

// UpdateInterface configures the link matching iface.hwAddr (or its name when
// no address is given): the addresses become exactly the requested ones (IPv6
// link-local addresses the kernel manages are kept), then MTU, name, ARP and
// up. It returns the link as it is afterwards.
func (m *Manager) UpdateInterface(_ context.Context, iface *Interface) (*Interface, error) {
	req, err := checkInterface(iface)
	if err != nil {
		return nil, err
	}
	link, err := m.findLink(req.hw, req.name)
	if err != nil {
		return nil, err
	}
	if link.Attrs().Flags&net.FlagUp != 0 {
		if err := m.h.LinkSetDown(link); err != nil {
			return nil, fmt.Errorf("set %s down: %w", link.Attrs().Name, err)
		}
	}
	if err := m.setAddresses(link, req.addrs); err != nil {
		return nil, err
	}
	if req.mtu != 0 && req.mtu != link.Attrs().MTU {
		if err := m.h.LinkSetMTU(link, req.mtu); err != nil {
			return nil, fmt.Errorf("set MTU %d on %s: %w", req.mtu, link.Attrs().Name, err)
		}
	}
	if req.name != "" && req.name != link.Attrs().Name {
		if err := m.rename(link, req.name); err != nil {
			return nil, err
		}
	}
	if req.noARP {
		err = m.h.LinkSetARPOff(link)
	} else {
		err = m.h.LinkSetARPOn(link)
	}
	if err != nil {
		return nil, fmt.Errorf("set ARP on %s: %w", link.Attrs().Name, err)
	}
	if err := m.h.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("set %s up: %w", link.Attrs().Name, err)
	}
	link, err = m.h.LinkByIndex(link.Attrs().Index)
	if err != nil {
		return nil, fmt.Errorf("re-read link: %w", err)
	}
	return m.describe(link)
}

// rename gives link the name want. When another link already holds that
// name, the two swap names through a temporary one, as Kata does.
func (m *Manager) rename(link netlink.Link, want string) error {
	old := link.Attrs().Name
	other, err := m.h.LinkByName(want)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if !errors.As(err, &nf) {
			return fmt.Errorf("look up %s: %w", want, err)
		}
		other = nil
	}
	if other != nil {
		if err := m.h.LinkSetDown(other); err != nil {
			return fmt.Errorf("set %s down: %w", want, err)
		}
		tmp := fmt.Sprintf("cct%d", other.Attrs().Index)
		if err := m.h.LinkSetName(other, tmp); err != nil {
			return fmt.Errorf("rename %s to %s: %w", want, tmp, err)
		}
	}
	if err := m.h.LinkSetName(link, want); err != nil {
		return fmt.Errorf("rename %s to %s: %w", old, want, err)
	}
	if other != nil {
		if err := m.h.LinkSetName(other, old); err != nil {
			return fmt.Errorf("rename displaced link to %s: %w", old, err)
		}
	}
	return nil
}

func (m *Manager) setAddresses(link netlink.Link, want []*net.IPNet) error {
	v6 := m.ipv6Enabled()
	have, err := m.h.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("list addresses of %s: %w", link.Attrs().Name, err)
	}
	wanted := func(a *net.IPNet) bool {
		for _, w := range want {
			if w.IP.Equal(a.IP) && w.Mask.String() == a.Mask.String() {
				return true
			}
		}
		return false
	}
	for i := range have {
		a := have[i]
		if a.IP.IsLinkLocalUnicast() && a.IP.To4() == nil {
			continue
		}
		if !wanted(a.IPNet) {
			if err := m.h.AddrDel(link, &a); err != nil {
				return fmt.Errorf("remove address %s from %s: %w", a.IPNet, link.Attrs().Name, err)
			}
		}
	}
	for _, w := range want {
		if !is4(w.IP) && !v6 {
			// An IPv6 address on a stack with IPv6 disabled would fail the
			// whole sandbox; Kata skips it too.
			continue
		}
		if err := m.h.AddrReplace(link, &netlink.Addr{IPNet: w}); err != nil {
			return fmt.Errorf("Failed to add address %s: %w", w, err)
		}
	}
	return nil
}

// ipv6Enabled reads the namespace's disable_ipv6 switches.
func (m *Manager) ipv6Enabled() bool {
	on := false
	_ = inNetns(m.ns, func() error {
		for _, p := range []string{"/proc/sys/net/ipv6/conf/all/disable_ipv6", "/proc/sys/net/ipv6/conf/default/disable_ipv6"} {
			b, err := os.ReadFile(p)
			if err == nil && strings.TrimSpace(string(b)) == "0" {
				on = true
			}
		}
		return nil
	})
	return on
}

// ListInterfaces reports every link with its addresses.
func (m *Manager) ListInterfaces(context.Context) ([]*Interface, error) {
	links, err := m.h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	out := make([]*Interface, 0, len(links))
	for _, l := range links {
		i, err := m.describe(l)
		if err != nil {
			return nil, err
		}
		out = append(out, i)
	}
	return out, nil
}

func (m *Manager) describe(l netlink.Link) (*Interface, error) {
	a := l.Attrs()
	addrs, err := m.h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list addresses of %s: %w", a.Name, err)
	}
	i := &Interface{
		Name:     a.Name,
		MTU:      uint64(a.MTU),
		HwAddr:   a.HardwareAddr.String(),
		Type:     l.Type(),
		RawFlags: a.RawFlags,
	}
	for _, ad := range addrs {
		ones, _ := ad.Mask.Size()
		fam := FamilyV4
		if ad.IP.To4() == nil {
			fam = FamilyV6
		}
		i.IPAddresses = append(i.IPAddresses, &IPAddress{Family: fam, Address: ad.IP.String(), Mask: fmt.Sprint(ones)})
	}
	return i, nil
}

// SetMAC gives the link called name the hardware address hw, taking the link
// down first when it is up. Kata does this for a NIC the host passed through
// with VFIO, whose MAC the guest driver may have chosen, so that the by-MAC
// lookup of UpdateInterface finds it (src/agent/src/netlink.rs
// set_link_mac_by_name).
func (m *Manager) SetMAC(name, hw string) error {
	addr, err := net.ParseMAC(hw)
	if err != nil {
		return errs.Newf(errdefs.ErrInvalidArgument, "hardware address %q: %v", hw, err)
	}
	link, err := m.h.LinkByName(name)
	if err != nil {
		return errLinkNotFound("Name: " + name)
	}
	if strings.EqualFold(link.Attrs().HardwareAddr.String(), addr.String()) {
		return nil
	}
	if link.Attrs().Flags&net.FlagUp != 0 {
		if err := m.h.LinkSetDown(link); err != nil {
			return fmt.Errorf("set %s down: %w", name, err)
		}
	}
	if err := m.h.LinkSetHardwareAddr(link, addr); err != nil {
		return fmt.Errorf("set %s's address to %s: %w", name, addr, err)
	}
	return nil
}
