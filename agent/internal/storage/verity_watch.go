package storage

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// ueventKernelGroup is the netlink multicast group the kernel sends
// uevents to (lib/kobject_uevent.c); udev re-sends them on group 2, which
// is not read here.
const ueventKernelGroup = 1

// ueventRcvBuf is the socket's receive buffer: a burst of uevents (a disk
// with many partitions going away, a hundred verity errors) must not
// overflow it before the reader runs.
const ueventRcvBuf = 1 << 20

// verityWatch reports, the moment the kernel signals them, the failures of
// one layer group's devices: a block that fails dm-verity verification
// (the reader gets EIO; this says which layer and block) and the removal
// of the disk under a mapping (every read not yet cached then fails).
// Without it a corruption would only show at RemoveContainer, when the
// mapping's status is read.
type verityWatch struct {
	f         *os.File
	log       *slog.Logger
	incidents *LayerIncidents
	done      chan struct{}

	mu    sync.Mutex
	byDev map[uint64]*verityDevice // dm-verity device number → its layer
	under map[uint64]*verityDevice // the partition or disk under it → its layer
}

// watchVerity opens a uevent socket and starts reading it; close stops it.
func watchVerity(log *slog.Logger, incidents *LayerIncidents) (*verityWatch, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_KOBJECT_UEVENT)
	if err != nil {
		return nil, fmt.Errorf("uevent socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: ueventKernelGroup}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("uevent socket: bind: %w", err)
	}
	// Best effort: FORCE needs CAP_NET_ADMIN, the default size still works.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, ueventRcvBuf) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, ueventRcvBuf)
	}
	w := &verityWatch{
		f: os.NewFile(uintptr(fd), "uevent"), log: log, incidents: incidents, done: make(chan struct{}),
		byDev: map[uint64]*verityDevice{}, under: map[uint64]*verityDevice{},
	}
	rc, err := w.f.SyscallConn()
	if err != nil {
		w.f.Close()
		return nil, fmt.Errorf("uevent socket: %w", err)
	}
	go w.run(rc)
	return w, nil
}

// add starts watching v's mapping and the device under it.
func (w *verityWatch) add(v *verityDevice) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.byDev[v.dev] = v
	w.under[v.under] = v
}

// close stops the reader and waits for it.
func (w *verityWatch) close() {
	w.f.Close() // wakes the reader blocked in the poller
	<-w.done
}

func (w *verityWatch) run(rc interface {
	Read(func(uintptr) bool) error
}) {
	defer close(w.done)
	buf := make([]byte, 8<<10)
	for {
		var n int
		var from unix.Sockaddr
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			n, from, rerr = unix.Recvfrom(int(fd), buf, 0)
			return rerr != unix.EAGAIN
		})
		switch {
		case err != nil: // closed
			return
		case errors.Is(rerr, unix.ENOBUFS):
			// Events were dropped; the status read at release still
			// catches a corruption.
			w.log.Warn("uevents lost: receive buffer overflowed; dm-verity corruption is still reported at release")
			continue
		case rerr != nil:
			w.log.Warn("uevent socket failed; dm-verity corruption is reported at release only", "error", rerr.Error())
			return
		}
		// Only the kernel (port 0) sends the events acted on.
		if sa, ok := from.(*unix.SockaddrNetlink); !ok || sa.Pid != 0 {
			continue
		}
		ev, err := parseUevent(buf[:n])
		if err != nil {
			continue // another subsystem's message; none is acted on
		}
		w.handle(ev)
	}
}

// handle logs an event about one of the group's devices. The "error"
// attribute repeats the facts in one sentence: in confidential mode the
// log sinks the host reads keep only some keys (logfwd.Redact), "error"
// among them, and the root hash and block are nothing the host does not
// know, since it sent the one and wrote the other.
func (w *verityWatch) handle(ev uevent) {
	dev, ok := ev.device()
	if !ok {
		return
	}
	w.mu.Lock()
	v, under := w.byDev[dev], w.under[dev]
	w.mu.Unlock()
	switch {
	case ev.action == "change" && v != nil && ev.env[verityErrVar] != "":
		kind, block, err := parseVerityErr(ev.env[verityErrVar])
		if err != nil {
			w.log.Warn("dm-verity error event unreadable", "layer", v.layer, "device", v.name, "error", err.Error())
			kind = "unknown"
		}
		// The kernel sends one per failing block, up to 100: the first
		// is the news, the rest are counted.
		if v.corruptions.Add(1) == 1 {
			w.incidents.corruptions.Add(1)
			w.log.Error("dm-verity detected corruption", "layer", v.layer, "root_hash", v.hash, "device", v.name,
				"dev", v.path, "block_type", kind, "block", block,
				"error", fmt.Sprintf("%s block %d of erofs layer %s failed verification against root hash %s: reads of it fail with EIO", kind, block, v.layer, v.hash))
		}
	case ev.action == "remove" && under != nil:
		if under.removed.CompareAndSwap(false, true) {
			w.incidents.removed.Add(1)
			w.log.Error("erofs layer device removed while mounted: reads of this layer now fail with EIO",
				"layer", under.layer, "root_hash", under.hash, "device", under.part, "mapping", under.name,
				"error", fmt.Sprintf("%s, the device of erofs layer %s (root hash %s), was removed while mounted", under.part, under.layer, under.hash))
		}
	}
}
