package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cocoon-tee/cocoon/protocols/agentpb"
	"github.com/cocoon-tee/cocoon/tools/client"
)

// VMConfig describes one boot.
type VMConfig struct {
	// Name names the console log (build/e2e/logs/<Name>.console.log).
	Name string
	// Kernel and Initrd default to the artefacts' test kernel and initrd.
	Kernel, Initrd string
	// Disk is the root disk; empty boots without one (initrd mode).
	Disk string
	// Extra are appended to the kernel command line.
	Extra []string
	// Drives are further read-only raw disks (e.g. an initdata image).
	Drives []string
	// Disks are writable raw disks on fixed PCI slots of the root bus, as
	// the runtime hot-plugs a pod's block volumes; the agent finds each by
	// its PCI path (the slot in hex).
	Disks []Disk
	// GuestFwd forwards the guest's TCP connections to an address of the
	// user-mode network to a host command, one run per connection
	// (QEMU's guestfwd=tcp:ADDR:PORT-cmd:COMMAND).
	GuestFwd []GuestFwd
	// NoNet leaves the VM without a network card.
	NoNet bool
	// VsockRelays are agent vsock ports besides 1024 the host reaches
	// through guestprobe (VM.Relay); each must be one of ProbeRelays.
	VsockRelays []uint32
	// Monitor opens QEMU's human monitor, for VM.Unplug.
	Monitor bool
}

// ProbeRelays are the agent's vsock ports guestprobe relays besides 1024,
// each from the guest's TCP port of the same number: the log port and the
// debug console at the ports runtime-rs uses (docs/operations.md).
func ProbeRelays() []uint32 { return []uint32{1025, 1026} }

// relayList is ProbeRelays as guestprobe's -vsock-relays value.
func relayList() string {
	var s []string
	for _, p := range ProbeRelays() {
		s = append(s, strconv.FormatUint(uint64(p), 10))
	}
	return strings.Join(s, ",")
}

// Disk is a writable disk of the guest.
type Disk struct {
	Path string
	Slot uint8 // PCI slot on the root bus, 0x10–0x1f
}

// PCIPath is the disk's address as the Kata runtime sends it in a blk
// storage's source (a single hop: the slot in hex).
func (d Disk) PCIPath() string { return fmt.Sprintf("%02x", d.Slot) }

// GuestFwd is one guestfwd rule.
type GuestFwd struct {
	Addr    string // "10.0.2.100:53"
	Command string // run with the connection on stdin and stdout
}

// VM is a running QEMU guest.
type VM struct {
	cmd        *exec.Cmd
	ConsoleLog string
	// AgentAddr reaches the agent through guestprobe's relay; StatusAddr
	// reaches guestprobe's status port.
	AgentAddr, StatusAddr string
	// relays are the host addresses of VMConfig.VsockRelays.
	relays map[uint32]string
	// monitor is the unix socket of QEMU's human monitor (VMConfig.Monitor).
	monitor string
	exited  chan struct{}
	waitErr error
}

// Boot starts QEMU under TCG (this machine, like CI, has no usable KVM).
func Boot(ctx context.Context, a Artifacts, cfg VMConfig) (*VM, error) {
	if cfg.Kernel == "" {
		cfg.Kernel = a.Kernel
	}
	logs := filepath.Join(a.Dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return nil, err
	}
	v := &VM{ConsoleLog: filepath.Join(logs, cfg.Name+".console.log"), exited: make(chan struct{})}
	started := false // whether QEMU runs and owns the monitor's directory
	// An empty log of this boot exists from the start, so WaitRecord can
	// watch it before QEMU opens it (QEMU's file chardev opens it with
	// O_CREAT|O_TRUNC: the same file, still empty).
	if err := os.WriteFile(v.ConsoleLog, nil, 0o644); err != nil {
		return nil, err
	}
	// no_timer_check, as Kata's runtime passes it too: under TCG on a busy
	// host the vCPU thread may not run while the kernel checks that the
	// IO-APIC timer ticks, and the kernel panics ("IO-APIC + timer doesn't
	// work!") before it has started.
	cmdline := append([]string{"console=ttyS0", "panic=-1", "quiet", "no_timer_check"}, cfg.Extra...)
	args := []string{
		"-accel", "tcg", "-m", "1024", "-smp", "1",
		"-nodefaults", "-display", "none", "-no-reboot",
		"-serial", "file:" + v.ConsoleLog,
		"-kernel", cfg.Kernel,
	}
	if cfg.Initrd != "" {
		args = append(args, "-initrd", cfg.Initrd)
	}
	if cfg.Disk != "" {
		args = append(args, "-drive", "file="+cfg.Disk+",if=virtio,format=raw,readonly=on")
	}
	for _, d := range cfg.Drives {
		args = append(args, "-drive", "file="+d+",if=virtio,format=raw,readonly=on")
	}
	for i, d := range cfg.Disks {
		if d.Slot < 0x10 || d.Slot > 0x1f || strings.Contains(d.Path, ",") {
			return nil, fmt.Errorf("disk %s: slot %#x must be 0x10–0x1f and the path free of commas", d.Path, d.Slot)
		}
		id := fmt.Sprintf("disk%d", i)
		args = append(args, "-drive", "file="+d.Path+",if=none,id="+id+",format=raw",
			"-device", fmt.Sprintf("virtio-blk-pci,drive=%s,id=%s,addr=%#x", id, diskDeviceID(i), d.Slot))
	}
	if !cfg.NoNet {
		agentPort, err := freePort()
		if err != nil {
			return nil, err
		}
		statusPort, err := freePort()
		if err != nil {
			return nil, err
		}
		v.AgentAddr = "tcp://127.0.0.1:" + strconv.Itoa(agentPort)
		v.StatusAddr = "127.0.0.1:" + strconv.Itoa(statusPort)
		nic := fmt.Sprintf("user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:%d-:1024,hostfwd=tcp:127.0.0.1:%d-:1099", agentPort, statusPort)
		v.relays = map[uint32]string{}
		for _, p := range cfg.VsockRelays {
			if !slices.Contains(ProbeRelays(), p) {
				return nil, fmt.Errorf("vsock port %d: guestprobe relays only %v", p, ProbeRelays())
			}
			hostPort, err := freePort()
			if err != nil {
				return nil, err
			}
			v.relays[p] = "127.0.0.1:" + strconv.Itoa(hostPort)
			nic += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:%d", hostPort, p)
		}
		for _, f := range cfg.GuestFwd {
			if strings.Contains(f.Addr+f.Command, ",") {
				return nil, fmt.Errorf("guestfwd %s: no commas in QEMU's option", f.Addr)
			}
			nic += ",guestfwd=tcp:" + f.Addr + "-cmd:" + f.Command
		}
		args = append(args, "-nic", nic)
	}
	args = append(args, "-append", strings.Join(cmdline, " "))
	if cfg.Monitor {
		// A short path of its own: a unix socket path has at most 107 bytes.
		dir, err := os.MkdirTemp("", "qemu-mon-")
		if err != nil {
			return nil, err
		}
		v.monitor = filepath.Join(dir, "hmp")
		defer func() {
			if !started {
				os.RemoveAll(dir)
			}
		}()
		args = append(args, "-monitor", "unix:"+v.monitor+",server=on,wait=off")
	}
	// Not CommandContext: the VM's lifetime is managed by Kill and Wait, and
	// a dead QEMU must be noticed even after ctx ends.
	v.cmd = exec.Command("qemu-system-x86_64", args...)
	out, err := os.Create(v.ConsoleLog + ".qemu")
	if err != nil {
		return nil, err
	}
	v.cmd.Stdout, v.cmd.Stderr = out, out
	if err := v.cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("start qemu: %w", err)
	}
	started = true
	go func() {
		v.waitErr = v.cmd.Wait()
		out.Close()
		if v.monitor != "" {
			os.RemoveAll(filepath.Dir(v.monitor))
		}
		close(v.exited)
	}()
	return v, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Console reads and parses the console log so far.
func (v *VM) Console() Console {
	data, _ := os.ReadFile(v.ConsoleLog)
	return ParseConsole(data)
}

// WaitRecord waits until the agent logs a console record with msg and
// returns the first one. It fails if QEMU stops without it or ctx ends
// first. It wakes on each write to the console log (inotify), not on a timer.
func (v *VM) WaitRecord(ctx context.Context, msg string) (AgentRecord, error) {
	w, err := watchConsole(v.ConsoleLog)
	if err != nil {
		return nil, err
	}
	defer w.Close()
	defer context.AfterFunc(ctx, w.interrupt)()
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-v.exited:
			w.interrupt()
		case <-done:
		}
	}()
	for {
		// Whether QEMU had stopped is taken before the log is read: a
		// stopped QEMU has written everything, so a record that is not
		// in this read never comes.
		exited := v.Exited()
		recs, err := w.next()
		for _, r := range recs {
			if r.Msg() == msg {
				return r, nil
			}
		}
		switch {
		case err != nil:
			return nil, fmt.Errorf("read console log: %w", err)
		case exited:
			return nil, fmt.Errorf("VM stopped before the agent logged %q", msg)
		}
		if err := w.wait(); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, fmt.Errorf("watch console log: %w", err)
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("agent did not log %q: %w", msg, ctx.Err())
		}
	}
}

// Exited reports whether QEMU has stopped.
func (v *VM) Exited() bool {
	select {
	case <-v.exited:
		return true
	default:
		return false
	}
}

// Wait waits for QEMU to stop on its own (the guest powered off).
func (v *VM) Wait(ctx context.Context) error {
	select {
	case <-v.exited:
		return v.waitErr
	case <-ctx.Done():
		return fmt.Errorf("VM still running: %w", ctx.Err())
	}
}

// Kill stops QEMU if it still runs.
func (v *VM) Kill() {
	if !v.Exited() {
		v.cmd.Process.Kill()
		<-v.exited
	}
}

// ProbeReadyMsg is the console record guestprobe writes once its relay
// listeners are bound (ci/e2e/guestprobe).
const ProbeReadyMsg = "relay listening"

// recordBound bounds how long ConnectAgent waits for the console records
// before it falls back to dialling until the agent answers.
const recordBound = 2 * time.Minute

// ConnectAgent connects once guestprobe has logged that its relay listens
// and the agent that it serves: QEMU's port forward accepts a host
// connection before anything listens in the guest, so a dial alone says
// nothing. It fails when the VM stops or ctx ends first.
func (v *VM) ConnectAgent(ctx context.Context) (*client.Client, error) {
	if v.AgentAddr == "" {
		return nil, errors.New("VM has no network")
	}
	err := v.waitReady(ctx)
	switch {
	case err == nil:
		// Both listeners are bound: the check needs no bound of its own.
		return v.tryAgent(ctx, 0)
	case ctx.Err() != nil || v.Exited():
		return nil, err
	}
	// Fallback, bounded by ctx: the records can legitimately never arrive
	// whole. The kernel's printk and the guest's processes share ttyS0
	// without any line locking, so a kernel message may land inside a
	// record and make it unparsable; and an agent configured to log above
	// info, or to the log port only, never writes "agent serving" there.
	last := err
	for {
		c, err := v.tryAgent(ctx, 3*time.Second)
		if err == nil {
			return c, nil
		}
		last = err
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("agent did not answer: %w (last error: %v)", ctx.Err(), last)
		case <-v.exited:
			return nil, fmt.Errorf("VM stopped before the agent answered (last error: %v)", last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// waitReady waits, at most recordBound, for guestprobe's ready record and
// the agent's "agent serving" (logged after its listener is bound).
func (v *VM) waitReady(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, recordBound)
	defer cancel()
	for _, msg := range []string{ProbeReadyMsg, "agent serving"} {
		if _, err := v.WaitRecord(rctx, msg); err != nil {
			return err
		}
	}
	return nil
}

// tryAgent dials and checks the agent's health, the check bounded by
// checkBound if it is not zero: before the relay listens, QEMU accepts the
// connection and then nothing ever answers.
func (v *VM) tryAgent(ctx context.Context, checkBound time.Duration) (*client.Client, error) {
	c, err := client.Dial(ctx, v.AgentAddr)
	if err != nil {
		return nil, err
	}
	cctx := ctx
	if checkBound > 0 {
		var cancel context.CancelFunc
		cctx, cancel = context.WithTimeout(ctx, checkBound)
		defer cancel()
	}
	resp, err := c.Health.Check(cctx, &agentpb.CheckRequest{})
	if err != nil {
		c.Close()
		return nil, err
	}
	if resp.Status != agentpb.HealthCheckResponse_SERVING {
		c.Close()
		return nil, fmt.Errorf("health status %v", resp.Status)
	}
	return c, nil
}

// Relay returns the host address that reaches the agent's vsock port
// (one of VMConfig.VsockRelays) through guestprobe.
func (v *VM) Relay(port uint32) (string, error) {
	addr, ok := v.relays[port]
	if !ok {
		return "", fmt.Errorf("vsock port %d is not relayed (VMConfig.VsockRelays)", port)
	}
	return addr, nil
}

// Status asks guestprobe about PID 1.
func (v *VM) Status(ctx context.Context) (Status, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", v.StatusAddr)
	if err != nil {
		return Status{}, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	data, err := io.ReadAll(io.LimitReader(conn, maxStatus+1))
	if err != nil {
		return Status{}, err
	}
	return ParseStatus(data)
}
