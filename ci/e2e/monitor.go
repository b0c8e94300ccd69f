package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// diskDeviceID is the QEMU device id of VMConfig.Disks[i].
func diskDeviceID(i int) string { return fmt.Sprintf("disk%d-dev", i) }

// Unplug hot-unplugs VMConfig.Disks[i] with the monitor's device_del, as a
// host removing a pod's disk does: QEMU asks the guest to eject it (ACPI
// PCI hotplug) and the guest's kernel removes the disk. It returns once
// QEMU took the command; the guest removes the disk a moment later.
func (v *VM) Unplug(ctx context.Context, i int) error {
	if v.monitor == "" {
		return errors.New("the VM was booted without VMConfig.Monitor")
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", v.monitor)
	if err != nil {
		return fmt.Errorf("monitor: %w", err)
	}
	defer conn.Close()
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(30 * time.Second)
	}
	conn.SetDeadline(dl)
	if _, err := readPrompt(conn); err != nil {
		return err
	}
	if _, err := fmt.Fprintf(conn, "device_del %s\n", diskDeviceID(i)); err != nil {
		return fmt.Errorf("monitor: %w", err)
	}
	out, err := readPrompt(conn)
	if err != nil {
		return err
	}
	if strings.Contains(out, "Error") {
		return fmt.Errorf("device_del %s: %s", diskDeviceID(i), strings.TrimSpace(out))
	}
	return nil
}

// readPrompt reads the monitor's output up to its next "(qemu) " prompt.
func readPrompt(conn net.Conn) (string, error) {
	var out []byte
	buf := make([]byte, 4096)
	for !bytes.Contains(out, []byte("(qemu) ")) {
		n, err := conn.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			return string(out), fmt.Errorf("monitor: %w (read %q)", err, out)
		}
		if len(out) > 1<<20 {
			return "", errors.New("monitor: no prompt in 1 MiB")
		}
	}
	return string(out), nil
}
