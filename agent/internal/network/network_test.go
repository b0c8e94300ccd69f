package network

import (
	"context"
	"net"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
)

// newNetns creates a private network namespace for one test; the test
// thread goes back to its own namespace at once, so the host's network is
// never touched.
func newNetns(t *testing.T) netns.NsHandle {
	t.Helper()
	testenv.RequiresRoot(t)
	type res struct {
		h   netns.NsHandle
		err error
	}
	c := make(chan res, 1)
	go func() {
		runtime.LockOSThread()
		// The thread is left locked: it ends with the goroutine.
		h, err := netns.New()
		c <- res{h, err}
	}()
	r := <-c
	if r.err != nil {
		t.Fatalf("create netns: %v", r.err)
	}
	t.Cleanup(func() { r.h.Close() })
	return r.h
}

const (
	mac0 = "02:00:00:00:aa:01"
	mac1 = "02:00:00:00:aa:02"
)

// setup returns a Manager in a fresh netns holding the veth pair
// veth0 (mac0) – veth1 (mac1).
func setup(t *testing.T) (*Manager, *netlink.Handle) {
	t.Helper()
	ns := newNetns(t)
	m, err := New(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	hw0, _ := net.ParseMAC(mac0)
	hw1, _ := net.ParseMAC(mac1)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "veth0", HardwareAddr: hw0}, PeerName: "veth1", PeerHardwareAddr: hw1}
	if err := h.LinkAdd(veth); err != nil {
		t.Fatalf("add veth: %v", err)
	}
	if lo, err := h.LinkByName("lo"); err == nil {
		_ = h.LinkSetUp(lo)
	}
	return m, h
}

func v4(addr, mask string) *IPAddress {
	return &IPAddress{Family: FamilyV4, Address: addr, Mask: mask}
}

func v6(addr, mask string) *IPAddress {
	return &IPAddress{Family: FamilyV6, Address: addr, Mask: mask}
}

func addrSet(i *Interface) map[string]bool {
	s := map[string]bool{}
	for _, a := range i.IPAddresses {
		s[a.Address+"/"+a.Mask] = true
	}
	return s
}

func TestUpdateInterface(t *testing.T) {
	m, h := setup(t)
	ctx := context.Background()
	got, err := m.UpdateInterface(ctx, &Interface{
		HwAddr: mac0, Name: "eth0", MTU: 1400,
		IPAddresses: []*IPAddress{v4("10.10.0.2", "24"), v6("fd00::2", "64")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "eth0" || got.MTU != 1400 || got.HwAddr != mac0 || got.Type != "veth" {
		t.Fatalf("interface after update: %v", got)
	}
	as := addrSet(got)
	if !as["10.10.0.2/24"] || !as["fd00::2/64"] {
		t.Fatalf("addresses after update: %v", as)
	}
	l, err := h.LinkByName("eth0")
	if err != nil || l.Attrs().Flags&net.FlagUp == 0 {
		t.Fatalf("eth0 not up: %v %v", l, err)
	}

	// A second update replaces the addresses rather than adding to them, and
	// the dotted netmask form is accepted.
	got, err = m.UpdateInterface(ctx, &Interface{HwAddr: strings.ToUpper(mac0), Name: "eth0", IPAddresses: []*IPAddress{v4("10.10.0.3", "255.255.255.0")}})
	if err != nil {
		t.Fatal(err)
	}
	as = addrSet(got)
	if !as["10.10.0.3/24"] || as["10.10.0.2/24"] || as["fd00::2/64"] {
		t.Fatalf("addresses after second update: %v", as)
	}

	// Renaming onto a name another link holds swaps the two names.
	if _, err := m.UpdateInterface(ctx, &Interface{HwAddr: mac1, Name: "eth0"}); err != nil {
		t.Fatal(err)
	}
	l0, _ := h.LinkByName("eth0")
	l1, _ := h.LinkByName("veth1")
	if l0 == nil || l0.Attrs().HardwareAddr.String() != mac1 || l1 == nil || l1.Attrs().HardwareAddr.String() != mac0 {
		t.Fatalf("swap: eth0=%v veth1=%v", l0, l1)
	}

	list, err := m.ListInterfaces(ctx)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, i := range list {
		names[i.Name] = true
	}
	if !names["lo"] || !names["eth0"] || !names["veth1"] || len(list) != 3 {
		t.Fatalf("ListInterfaces: %v", list)
	}
}

func TestUpdateInterfaceBadInput(t *testing.T) {
	m, h := setup(t)
	ctx := context.Background()
	cases := []struct {
		name  string
		iface *Interface
		class func(error) bool
	}{
		{"nil", nil, errdefs.IsInvalidArgument},
		{"no identity", &Interface{MTU: 1500}, errdefs.IsInvalidArgument},
		{"bad mac", &Interface{HwAddr: "zz:00"}, errdefs.IsInvalidArgument},
		{"bad ip", &Interface{HwAddr: mac0, IPAddresses: []*IPAddress{v4("10.0.0.300", "24")}}, errdefs.IsInvalidArgument},
		{"bad prefix", &Interface{HwAddr: mac0, IPAddresses: []*IPAddress{v4("10.0.0.3", "33")}}, errdefs.IsInvalidArgument},
		{"bad mask", &Interface{HwAddr: mac0, IPAddresses: []*IPAddress{v4("10.0.0.3", "255.0.255.0")}}, errdefs.IsInvalidArgument},
		{"family mismatch", &Interface{HwAddr: mac0, IPAddresses: []*IPAddress{v6("10.0.0.3", "24")}}, errdefs.IsInvalidArgument},
		{"null address", &Interface{HwAddr: mac0, IPAddresses: []*IPAddress{nil}}, errdefs.IsInvalidArgument},
		{"small mtu", &Interface{HwAddr: mac0, MTU: 10}, errdefs.IsInvalidArgument},
		{"huge mtu", &Interface{HwAddr: mac0, MTU: 1 << 40}, errdefs.IsInvalidArgument},
		{"long name", &Interface{HwAddr: mac0, Name: "abcdefghijklmnopq"}, errdefs.IsInvalidArgument},
		{"slash name", &Interface{HwAddr: mac0, Name: "a/b"}, errdefs.IsInvalidArgument},
		{"unknown mac", &Interface{HwAddr: "02:00:00:00:00:99", Name: "eth9"}, errdefs.IsNotFound},
		{"unknown name", &Interface{Name: "eth9"}, errdefs.IsNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := m.UpdateInterface(ctx, c.iface)
			if err == nil || !c.class(err) {
				t.Fatalf("err = %v", err)
			}
			if errdefs.IsNotFound(err) && !strings.Contains(err.Error(), "Link not found") {
				t.Fatalf("runtime retries on %q, got %v", "Link not found", err)
			}
		})
	}
	// Nothing was changed by the refused requests.
	l, err := h.LinkByName("veth0")
	if err != nil || l.Attrs().MTU != 1500 || l.Attrs().Flags&net.FlagUp != 0 {
		t.Fatalf("veth0 changed: %v %v", l, err)
	}
	addrs, _ := h.AddrList(l, netlink.FAMILY_V4)
	if len(addrs) != 0 {
		t.Fatalf("veth0 got addresses: %v", addrs)
	}
}

func routeKeys(rs []*Route) map[string]bool {
	s := map[string]bool{}
	for _, r := range rs {
		s[r.Dest+" via "+r.Gateway+" dev "+r.Device] = true
	}
	return s
}

func TestUpdateRoutes(t *testing.T) {
	m, _ := setup(t)
	ctx := context.Background()
	if _, err := m.UpdateInterface(ctx, &Interface{HwAddr: mac0, Name: "eth0", IPAddresses: []*IPAddress{v4("10.10.0.2", "24"), v6("fd00::2", "64")}}); err != nil {
		t.Fatal(err)
	}
	// Gateway routes listed first: the agent must still add the link route
	// that makes 10.30.0.1 reachable before the route through it.
	routes := []*Route{
		{Dest: "", Gateway: "10.10.0.1", Device: "eth0"},
		{Dest: "10.40.0.0/16", Gateway: "10.30.0.1", Device: "eth0"},
		{Dest: "10.30.0.0/24", Device: "eth0", Scope: 253},
		{Dest: "fd01::/64", Gateway: "fd00::1", Device: "eth0", Family: FamilyV6},
		{Dest: "10.50.0.0/16", Device: "eth0", Source: "10.10.0.2", Scope: 253, MTU: 1300},
	}
	got, err := m.UpdateRoutes(ctx, routes)
	if err != nil {
		t.Fatal(err)
	}
	k := routeKeys(got)
	for _, want := range []string{" via 10.10.0.1 dev eth0", "10.40.0.0/16 via 10.30.0.1 dev eth0", "10.30.0.0/24 via  dev eth0", "fd01::/64 via fd00::1 dev eth0", "10.10.0.0/24 via  dev eth0", "10.50.0.0/16 via  dev eth0"} {
		if !k[want] {
			t.Errorf("missing route %q in %v", want, k)
		}
	}
	for _, r := range got {
		if r.Dest == "10.50.0.0/16" && (r.Source != "10.10.0.2" || r.MTU != 1300 || r.Scope != 253) {
			t.Errorf("10.50.0.0/16 route lost source/mtu/scope: %v", r)
		}
	}

	// A bad request changes nothing.
	for _, bad := range [][]*Route{
		{{Dest: "10.0.0.0/33", Device: "eth0"}},
		{{Dest: "not-a-cidr", Device: "eth0"}},
		{{Dest: "10.1.0.0/16", Gateway: "fd00::1", Device: "eth0"}},
		{{Dest: "10.1.0.0/16", Device: "nosuch0"}},
		{{Dest: "10.1.0.0/16", Device: ""}},
		{{Dest: "10.1.0.0/16", Device: "eth0", Scope: 999}},
		{nil},
	} {
		if _, err := m.UpdateRoutes(ctx, bad); err == nil {
			t.Errorf("UpdateRoutes(%v) succeeded", bad)
		}
	}
	now, err := m.ListRoutes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(routeKeys(now)) != len(k) {
		t.Fatalf("bad requests changed the table: %v -> %v", k, routeKeys(now))
	}

	// Replacing with a shorter table removes the rest but keeps kernel routes.
	got, err = m.UpdateRoutes(ctx, []*Route{{Dest: "default", Gateway: "10.10.0.1", Device: "eth0"}})
	if err != nil {
		t.Fatal(err)
	}
	k = routeKeys(got)
	if !k[" via 10.10.0.1 dev eth0"] || !k["10.10.0.0/24 via  dev eth0"] || k["10.40.0.0/16 via 10.30.0.1 dev eth0"] || k["fd01::/64 via fd00::1 dev eth0"] {
		t.Fatalf("after replace: %v", k)
	}

	// An unreachable gateway fails and the previous table is restored.
	if _, err := m.UpdateRoutes(ctx, []*Route{{Dest: "10.60.0.0/16", Gateway: "192.0.2.1", Device: "eth0"}}); err == nil {
		t.Fatal("route through an unreachable gateway was accepted")
	} else {
		t.Log(err)
	}
	now, _ = m.ListRoutes(ctx)
	if !routeKeys(now)[" via 10.10.0.1 dev eth0"] {
		t.Fatalf("default route not restored: %v", routeKeys(now))
	}
}

func TestAddARPNeighbors(t *testing.T) {
	m, h := setup(t)
	ctx := context.Background()
	if _, err := m.UpdateInterface(ctx, &Interface{HwAddr: mac0, Name: "eth0", IPAddresses: []*IPAddress{v4("10.10.0.2", "24")}}); err != nil {
		t.Fatal(err)
	}
	err := m.AddARPNeighbors(ctx, []*ARPNeighbor{{ToIPAddress: v4("10.10.0.9", ""), Device: "eth0", Lladdr: "02:00:00:00:bb:09"}})
	if err != nil {
		t.Fatal(err)
	}
	l, _ := h.LinkByName("eth0")
	ns, err := h.NeighList(l.Attrs().Index, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, n := range ns {
		if n.IP.String() == "10.10.0.9" && n.HardwareAddr.String() == "02:00:00:00:bb:09" && n.State == netlink.NUD_PERMANENT {
			found = true
		}
	}
	if !found {
		t.Fatalf("neighbour not installed: %v", ns)
	}
	for _, bad := range []*ARPNeighbor{
		nil,
		{Device: "eth0"},
		{ToIPAddress: v4("10.10.0.x", ""), Device: "eth0"},
		{ToIPAddress: v4("10.10.0.8", ""), Device: "nosuch0"},
		{ToIPAddress: v4("10.10.0.8", ""), Device: "eth0", Lladdr: "zz"},
		{ToIPAddress: v4("10.10.0.8", ""), Device: "eth0", State: -1},
	} {
		if err := m.AddARPNeighbors(ctx, []*ARPNeighbor{bad}); err == nil {
			t.Errorf("AddARPNeighbors(%v) succeeded", bad)
		}
	}
}

func TestIPTables(t *testing.T) {
	m, _ := setup(t)
	ctx := context.Background()
	if _, err := findTool("iptables-restore"); err != nil {
		t.Fatalf("iptables is a CI dependency: %v", err)
	}
	rules := "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -s 192.0.2.77/32 -j DROP\nCOMMIT\n"
	if _, err := m.IPTables().Set(ctx, false, []byte(rules)); err != nil {
		t.Fatal(err)
	}
	out, err := m.IPTables().Get(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "-A INPUT -s 192.0.2.77/32 -j DROP") {
		t.Fatalf("rule not in iptables-save output:\n%s", out)
	}
	// The host namespace never saw the rule.
	host, err := exec.Command("iptables-save").Output()
	if err == nil && strings.Contains(string(host), "192.0.2.77") {
		t.Fatal("rule leaked into the host namespace")
	}
	v6rules := "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -s 2001:db8::77/128 -j DROP\nCOMMIT\n"
	if _, err := m.IPTables().Set(ctx, true, []byte(v6rules)); err != nil {
		t.Fatal(err)
	}
	out, err = m.IPTables().Get(ctx, true)
	if err != nil || !strings.Contains(string(out), "2001:db8::77/128") {
		t.Fatalf("ip6tables-save: %v\n%s", err, out)
	}
	if _, err := m.IPTables().Set(ctx, false, []byte("*filter\n-A NOSUCHCHAIN -j DROP\nCOMMIT\n")); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("bad rules: %v", err)
	}
	if _, err := m.IPTables().Set(ctx, false, make([]byte, MaxIPTablesData+1)); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("oversized rules: %v", err)
	}
}

func TestSetMAC(t *testing.T) {
	m, h := setup(t)
	l, err := h.LinkByName("veth0")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
	const want = "02:00:00:00:aa:01"
	if err := m.SetMAC("veth0", want); err != nil {
		t.Fatal(err)
	}
	if l, err = h.LinkByName("veth0"); err != nil || l.Attrs().HardwareAddr.String() != want {
		t.Fatalf("veth0 after SetMAC: %v, %v", l.Attrs().HardwareAddr, err)
	}
	// UpdateInterface now finds the link by the new address.
	if got, err := m.UpdateInterface(context.Background(), &Interface{HwAddr: want, Name: "eth5"}); err != nil || got.Name != "eth5" {
		t.Fatalf("update by the new MAC: %v, %v", got, err)
	}
	if err := m.SetMAC("eth5", "not-a-mac"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("bad MAC: %v, want INVALID_ARGUMENT", err)
	}
	if err := m.SetMAC("nope0", want); !errdefs.IsNotFound(err) {
		t.Errorf("unknown link: %v, want NOT_FOUND", err)
	}
}
