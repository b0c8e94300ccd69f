// Command guestprobe runs inside the VM test's guest only, never in a
// shipped image. The test appends it to the stage-1 initrd; a hook starts it
// before the hand-over to the agent.
//
// This machine has no vhost-vsock, so the host cannot reach the agent's
// AF_VSOCK listener directly. guestprobe stands in for that host side: it
// accepts TCP on the user-mode network and relays every byte to the agent at
// vsock CID 1 (the guest itself, via vsock_loopback) port 1024 — the agent's
// real, unmodified Kata listener. Every rpc the test sends therefore crosses
// AF_VSOCK. -vsock-relays names further agent ports (the log port 1025 and
// the debug console 1026) relayed the same way, TCP port N to vsock port N.
// A last port reports what only the guest can see: PID 1's command line,
// memory and mounts.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mdlayher/vsock"
	"golang.org/x/sys/unix"
)

func main() {
	iface := flag.String("iface", "eth0", "interface to configure")
	addr := flag.String("addr", "10.0.2.15/24", "address for iface (QEMU user networking's default guest address)")
	relay := flag.String("relay", ":1024", "TCP address relayed to the agent")
	port := flag.Uint("vsock-port", 1024, "agent vsock port at CID 1")
	status := flag.String("status", ":1099", "TCP address answering with PID 1's status")
	extra := flag.String("vsock-relays", "", "comma-separated agent vsock ports at CID 1, each relayed from the TCP port of the same number")
	flag.Parse()
	log.SetPrefix("guestprobe: ")
	log.SetFlags(0)

	ports, err := parsePorts(*extra)
	if err != nil {
		log.Fatal(err)
	}
	if err := configure(*iface, *addr); err != nil {
		log.Fatal(err)
	}
	// Every listener is open before any is served: once the host reaches
	// the agent through the first relay, the others answer too.
	rl, err := net.Listen("tcp", *relay)
	if err != nil {
		log.Fatal(err)
	}
	sl, err := net.Listen("tcp", *status)
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range ports {
		l, err := net.Listen("tcp", ":"+strconv.FormatUint(uint64(p), 10))
		if err != nil {
			log.Fatal(err)
		}
		go serve(l, func(c net.Conn) { relayVsock(c, p) })
	}
	// The host waits for this line before it dials: QEMU's port forward
	// accepts a host connection whether or not anything listens in the
	// guest, so a successful dial says nothing until the relays are bound.
	ready(*relay, *status, ports)
	var pr prober
	go serve(sl, pr.report)
	serve(rl, func(c net.Conn) { relayVsock(c, uint32(*port)) })
}

// readyMsg is the msg of the console record guestprobe writes once every
// listener is bound (e2e.VM.ConnectAgent waits for it).
const readyMsg = "relay listening"

// ready writes one JSON record to stdout (the console), shaped like the
// agent's log records so the host's console parser finds it the same way.
func ready(relay, status string, ports []uint32) {
	rec, err := json.Marshal(struct {
		Time        string   `json:"time"`
		Level       string   `json:"level"`
		Msg         string   `json:"msg"`
		Source      string   `json:"source"`
		Relay       string   `json:"relay"`
		Status      string   `json:"status"`
		VsockRelays []uint32 `json:"vsock_relays"`
	}{time.Now().UTC().Format(time.RFC3339Nano), "INFO", readyMsg, "guestprobe", relay, status, ports})
	if err != nil {
		log.Fatal(err)
	}
	// One write of the whole line keeps it in one piece as far as this
	// process can.
	if _, err := os.Stdout.Write(append(rec, '\n')); err != nil {
		log.Fatal(err)
	}
}

// parsePorts reads -vsock-relays: "1025,1026", or empty for none.
func parsePorts(list string) ([]uint32, error) {
	var ports []uint32
	for _, f := range strings.Split(list, ",") {
		if f == "" {
			continue
		}
		p, err := strconv.ParseUint(f, 10, 16)
		if err != nil || p == 0 {
			return nil, fmt.Errorf("-vsock-relays: %q is not a port", f)
		}
		ports = append(ports, uint32(p))
	}
	return ports, nil
}

func serve(l net.Listener, handle func(net.Conn)) {
	for {
		c, err := l.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go handle(c)
	}
}

// configure gives iface a static address and brings it up; there is no DHCP
// client in the guest and the agent only configures interfaces on request.
func configure(name, cidr string) error {
	p, err := netip.ParsePrefix(cidr)
	if err != nil || !p.Addr().Is4() {
		return fmt.Errorf("address %q: want an IPv4 prefix", cidr)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	// virtio_net binds asynchronously after the module loads.
	var ifr *unix.Ifreq
	for i := 0; ; i++ {
		if ifr, err = unix.NewIfreq(name); err != nil {
			return err
		}
		if err = unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err == nil {
			break
		}
		if i == 100 {
			return fmt.Errorf("%s: %w", name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	flags := ifr.Uint16()
	ip := p.Addr().As4()
	if err := ifr.SetInet4Addr(ip[:]); err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFADDR, ifr); err != nil {
		return fmt.Errorf("set address on %s: %w", name, err)
	}
	mask := net.CIDRMask(p.Bits(), 32)
	if err := ifr.SetInet4Addr(mask); err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFNETMASK, ifr); err != nil {
		return fmt.Errorf("set netmask on %s: %w", name, err)
	}
	ifr.SetUint16(flags | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring up %s: %w", name, err)
	}
	return nil
}

// relayVsock copies c to and from the agent. The agent may still be starting
// when the first connection arrives, so the dial is retried for a while.
func relayVsock(c net.Conn, port uint32) {
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var v net.Conn
	for {
		var err error
		if v, err = vsock.DialContext(ctx, unix.VMADDR_CID_LOCAL, port, nil); err == nil {
			break
		}
		if ctx.Err() != nil {
			log.Printf("dial vsock 1:%d: %v", port, err)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	defer v.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		copyHalf(v, c)
	}()
	copyHalf(c, v)
	wg.Wait()
}

// copyHalf copies src to dst, then half-closes dst so the peer sees EOF.
func copyHalf(dst, src net.Conn) {
	if _, err := io.Copy(dst, src); err != nil && !errors.Is(err, net.ErrClosed) {
		log.Printf("relay: %v", err)
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	} else {
		dst.Close()
	}
}

// procDir is a private procfs mount; the stage-1 /proc is gone after the
// hand-over and the agent's own /proc lives in a root we cannot see.
const procDir = "/probe-proc"

// maxDecisions bounds how much of the decision log one status reply carries.
const maxDecisions = 500

// prober mounts its procfs once, on the first status request.
type prober struct {
	once sync.Once
	err  error
}

func (p *prober) report(c net.Conn) {
	defer c.Close()
	if err := p.mountProc(); err != nil {
		fmt.Fprintf(c, "error %v\n", err)
		return
	}
	cmdline, _ := os.ReadFile(procDir + "/1/cmdline")
	fmt.Fprintf(c, "pid1.cmdline %s\n", strings.ReplaceAll(strings.TrimRight(string(cmdline), "\x00"), "\x00", " "))
	if st, err := os.ReadFile(procDir + "/1/status"); err == nil {
		for _, line := range strings.Split(string(st), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if ok && (k == "VmRSS" || k == "VmHWM" || k == "RssAnon" || k == "RssFile") {
				fmt.Fprintf(c, "pid1.%s %s\n", k, strings.TrimSpace(v))
			}
		}
	}
	if mi, err := os.ReadFile(procDir + "/1/mountinfo"); err == nil {
		for _, line := range strings.Split(strings.TrimSpace(string(mi)), "\n") {
			fmt.Fprintf(c, "pid1.mount %s\n", line)
		}
	}
	// Every process with its caught-signal mask: which processes run (a
	// container's init, the pause process) and whether they handle signals.
	if ents, err := os.ReadDir(procDir); err == nil {
		for _, e := range ents {
			if _, err := strconv.Atoi(e.Name()); err != nil {
				continue // self, thread-self, files
			}
			st, err := os.ReadFile(procDir + "/" + e.Name() + "/status")
			if err != nil {
				continue
			}
			var name, cgt string
			for _, line := range strings.Split(string(st), "\n") {
				k, v, _ := strings.Cut(line, ":")
				switch k {
				case "Name":
					name = strings.TrimSpace(v)
				case "SigCgt":
					cgt = strings.TrimSpace(v)
				}
			}
			fmt.Fprintf(c, "proc %s %s %s\n", e.Name(), name, cgt)
		}
	}
	// The agent's decision log, as an operator would read it from the
	// console-less guest: through PID 1's root (its /run is not ours).
	if dl, err := os.ReadFile(procDir + "/1/root/run/cocoon/decisions.log"); err == nil {
		lines := strings.Split(strings.TrimSpace(string(dl)), "\n")
		if len(lines) > maxDecisions {
			lines = lines[len(lines)-maxDecisions:]
		}
		for _, line := range lines {
			fmt.Fprintf(c, "decision %s\n", line)
		}
	}
	if mods, err := os.ReadFile(procDir + "/modules"); err == nil {
		for _, line := range strings.Split(strings.TrimSpace(string(mods)), "\n") {
			fmt.Fprintf(c, "module %s\n", strings.Fields(line)[0])
		}
	}
}

func (p *prober) mountProc() error {
	p.once.Do(func() {
		if p.err = os.MkdirAll(procDir, 0o555); p.err == nil {
			p.err = unix.Mount("proc", procDir, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
		}
	})
	return p.err
}
