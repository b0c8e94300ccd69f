package network

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// maxRoutes bounds one UpdateRoutes request.
const maxRoutes = 4096

// settableFlags are the route flags a caller may set. The others
// (linkdown, dead, offload...) are state the kernel reports and refuses on
// input; the host copies them from its own table, so they are dropped.
const settableFlags = unix.RTNH_F_ONLINK | unix.RTNH_F_PERVASIVE

// checkRoute validates one route and resolves its device.
func (m *Manager) checkRoute(r *Route) (netlink.Route, error) {
	var nr netlink.Route
	if r == nil {
		return nr, invalid("route is null")
	}
	if err := checkLinkName(r.Device); err != nil {
		return nr, fmt.Errorf("route to %q: %w", r.Dest, err)
	}
	dst, err := parseDest(r.Dest, r.Family)
	if err != nil {
		return nr, err
	}
	family := netlink.FAMILY_V4
	if !is4(dst.IP) {
		family = netlink.FAMILY_V6
	}
	if (family == netlink.FAMILY_V6) != (r.Family == FamilyV6) && r.Dest != "" {
		return nr, invalid("route destination %q does not match family %v", r.Dest, r.Family)
	}
	nr = netlink.Route{Dst: dst, Family: family, Table: unix.RT_TABLE_MAIN, Protocol: unix.RTPROT_BOOT, Type: unix.RTN_UNICAST}
	if r.Gateway != "" {
		gw, err := parseIP("gateway", r.Gateway)
		if err != nil {
			return nr, err
		}
		if is4(gw) != (family == netlink.FAMILY_V4) {
			return nr, invalid("gateway %q and destination %q are of different families", r.Gateway, r.Dest)
		}
		nr.Gw = gw
	}
	if r.Source != "" {
		src, err := parseIP("source", r.Source)
		if err != nil {
			return nr, err
		}
		if is4(src) != (family == netlink.FAMILY_V4) {
			return nr, invalid("source %q and destination %q are of different families", r.Source, r.Dest)
		}
		nr.Src = src
	}
	if r.Scope > 255 {
		return nr, invalid("route scope %d out of range 0-255", r.Scope)
	}
	nr.Scope = netlink.Scope(r.Scope)
	if r.MTU > maxMTU {
		return nr, invalid("route MTU %d more than %d", r.MTU, maxMTU)
	}
	nr.MTU = int(r.MTU)
	nr.Flags = int(r.Flags) & settableFlags
	link, err := m.h.LinkByName(r.Device)
	if err != nil {
		return nr, errLinkNotFound("Name: " + r.Device)
	}
	nr.LinkIndex = link.Attrs().Index
	return nr, nil
}

// UpdateRoutes replaces the main table's routes (both families) with routes
// and returns the table afterwards. Routes the kernel derived from addresses
// stay. The request is validated completely before anything changes; if
// adding fails part way, the previous routes are put back.
func (m *Manager) UpdateRoutes(ctx context.Context, routes []*Route) ([]*Route, error) {
	if len(routes) > maxRoutes {
		return nil, invalid("%d routes, more than %d", len(routes), maxRoutes)
	}
	want := make([]netlink.Route, 0, len(routes))
	for _, r := range routes {
		nr, err := m.checkRoute(r)
		if err != nil {
			return nil, err
		}
		want = append(want, nr)
	}
	// A gateway must be reachable when its route is added, so routes without
	// a gateway (link scope, the gateway's subnet) go first.
	ordered := make([]netlink.Route, 0, len(want))
	for _, r := range want {
		if r.Gw == nil {
			ordered = append(ordered, r)
		}
	}
	for _, r := range want {
		if r.Gw != nil {
			ordered = append(ordered, r)
		}
	}
	old, err := m.mainRoutes()
	if err != nil {
		return nil, err
	}
	var removed []netlink.Route
	for _, r := range old {
		if r.Protocol == unix.RTPROT_KERNEL {
			continue
		}
		if err := m.h.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			return nil, errors.Join(fmt.Errorf("remove route %s: %w", r, err), m.restore(nil, removed))
		}
		removed = append(removed, r)
	}
	var added []netlink.Route
	for _, r := range ordered {
		if err := m.h.RouteReplace(&r); err != nil {
			return nil, errors.Join(
				fmt.Errorf("Failed to add route (dst: %s, gw: %s, dev index %d): %w", r.Dst, r.Gw, r.LinkIndex, err),
				m.restore(added, removed))
		}
		added = append(added, r)
	}
	return m.ListRoutes(ctx)
}

// restore undoes a failed UpdateRoutes as far as the kernel lets it.
func (m *Manager) restore(added, removed []netlink.Route) error {
	var errs []error
	for i := len(added) - 1; i >= 0; i-- {
		if err := m.h.RouteDel(&added[i]); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("roll back route %s: %w", added[i].Dst, err))
		}
	}
	// Link-scope routes first again, so gateways resolve.
	for pass := 0; pass < 2; pass++ {
		for _, r := range removed {
			if (r.Gw == nil) != (pass == 0) {
				continue
			}
			c := netlink.Route{LinkIndex: r.LinkIndex, Dst: r.Dst, Src: r.Src, Gw: r.Gw, Scope: r.Scope,
				Protocol: r.Protocol, Table: r.Table, Type: r.Type, Flags: r.Flags & settableFlags, MTU: r.MTU, Priority: r.Priority, Family: r.Family}
			if err := m.h.RouteReplace(&c); err != nil {
				errs = append(errs, fmt.Errorf("restore route %s: %w", r.Dst, err))
			}
		}
	}
	return errors.Join(errs...)
}

func (m *Manager) mainRoutes() ([]netlink.Route, error) {
	rs, err := m.h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	return rs, nil
}

// ListRoutes reports the main table of both families. A default route has
// an empty dest, which is what the runtime sends for one.
func (m *Manager) ListRoutes(context.Context) ([]*Route, error) {
	rs, err := m.mainRoutes()
	if err != nil {
		return nil, err
	}
	names := map[int]string{}
	out := make([]*Route, 0, len(rs))
	for _, r := range rs {
		if r.LinkIndex == 0 && len(r.MultiPath) > 0 {
			continue // multipath routes are never configured by the runtime
		}
		name, ok := names[r.LinkIndex]
		if !ok {
			if l, err := m.h.LinkByIndex(r.LinkIndex); err == nil {
				name = l.Attrs().Name
			}
			names[r.LinkIndex] = name
		}
		tr := &Route{
			Device: name,
			Scope:  uint32(r.Scope),
			Flags:  uint32(r.Flags),
			MTU:    uint32(r.MTU),
		}
		if r.Family == netlink.FAMILY_V6 {
			tr.Family = FamilyV6
		}
		if r.Dst != nil {
			if ones, _ := r.Dst.Mask.Size(); ones != 0 || !r.Dst.IP.IsUnspecified() {
				tr.Dest = r.Dst.String()
			}
		}
		if r.Gw != nil {
			tr.Gateway = r.Gw.String()
		}
		if r.Src != nil {
			tr.Source = r.Src.String()
		}
		out = append(out, tr)
	}
	return out, nil
}

// AddARPNeighbors installs neighbour entries; state 0 means permanent.
// All entries are validated before any is added.
func (m *Manager) AddARPNeighbors(_ context.Context, neighs []*ARPNeighbor) error {
	if len(neighs) > maxRoutes {
		return invalid("%d neighbours, more than %d", len(neighs), maxRoutes)
	}
	list := make([]netlink.Neigh, 0, len(neighs))
	for _, n := range neighs {
		nn, err := m.checkNeighbor(n)
		if err != nil {
			return err
		}
		list = append(list, nn)
	}
	for i := range list {
		if err := m.h.NeighSet(&list[i]); err != nil {
			return fmt.Errorf("Failed to add ARP neighbor %s: %w", list[i].IP, err)
		}
	}
	return nil
}

func (m *Manager) checkNeighbor(n *ARPNeighbor) (netlink.Neigh, error) {
	var nn netlink.Neigh
	if n == nil {
		return nn, invalid("ARP neighbour is null")
	}
	var addr string
	if n.ToIPAddress != nil {
		addr = n.ToIPAddress.Address
	}
	if addr == "" {
		return nn, invalid("Unable to determine ip address of ARP neighbor")
	}
	ip := net.ParseIP(addr)
	if ip == nil {
		return nn, invalid("invalid ARP neighbour IP %q", addr)
	}
	if err := checkLinkName(n.Device); err != nil {
		return nn, err
	}
	if n.State < 0 || n.State > 0xffff || n.Flags < 0 || n.Flags > 0xff {
		return nn, invalid("ARP neighbour state %d or flags %d out of range", n.State, n.Flags)
	}
	nn = netlink.Neigh{IP: ip, State: int(n.State), Flags: int(n.Flags), Family: netlink.FAMILY_V4}
	if nn.State == 0 {
		nn.State = netlink.NUD_PERMANENT
	}
	if v4 := ip.To4(); v4 != nil {
		nn.IP = v4
	} else {
		nn.Family = netlink.FAMILY_V6
	}
	if n.Lladdr != "" {
		hw, err := parseMAC(n.Lladdr)
		if err != nil {
			return nn, err
		}
		nn.HardwareAddr = hw
	}
	link, err := m.h.LinkByName(n.Device)
	if err != nil {
		return nn, errLinkNotFound("Name: " + n.Device)
	}
	nn.LinkIndex = link.Attrs().Index
	return nn, nil
}
