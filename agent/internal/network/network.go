// Package network owns the guest's network configuration as the Kata runtime
// drives it: interfaces (addresses, MTU, name, state), the main route table,
// permanent ARP neighbours and iptables rules. Every operation runs in the
// network namespace the Manager was built for, so tests use their own netns
// and never touch the host's.
package network

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Manager applies network changes through one netlink handle.
type Manager struct {
	h        *netlink.Handle
	ns       netns.NsHandle
	iptables IPTables
}

// New returns a Manager for the namespace ns. A closed/None handle means the
// caller's current network namespace. The Manager does not own ns.
func New(ns netns.NsHandle) (*Manager, error) {
	var (
		h   *netlink.Handle
		err error
	)
	if ns.IsOpen() {
		h, err = netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	} else {
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
	}
	if err != nil {
		return nil, fmt.Errorf("netlink handle: %w", err)
	}
	return &Manager{h: h, ns: ns, iptables: IPTables{ns: ns}}, nil
}

// Close releases the netlink sockets.
func (m *Manager) Close() { m.h.Close() }

// IPTables returns the iptables runner bound to the Manager's namespace.
func (m *Manager) IPTables() *IPTables { return &m.iptables }

// inNetns runs fn on a dedicated OS thread that has joined ns. The thread is
// never returned to the Go scheduler (the goroutine exits while still locked,
// so the runtime discards it): a thread left in a foreign namespace would
// leak that namespace into unrelated goroutines.
func inNetns(ns netns.NsHandle, fn func() error) error {
	if !ns.IsOpen() {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Setns(int(ns), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("join network namespace: %w", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}
