package system

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/opencontainers/runc/libcontainer/seccomp"
)

// ExtraFeatures are the optional Kata agent features this build always has.
func ExtraFeatures() []string { return []string{"agent-policy", "guest-pull"} }

// DetailsRequest says which memory facts GetGuestDetails asks for.
type DetailsRequest struct {
	MemBlockSize    bool
	MemHotplugProbe bool
}

// Details are the guest's memory hot-plug facts and the agent's abilities.
type Details struct {
	MemBlockSizeBytes      uint64
	SupportMemHotplugProbe bool
	Agent                  AgentDetails
}

// AgentDetails are what the agent can do.
type AgentDetails struct {
	Version         string
	InitDaemon      bool
	SupportsSeccomp bool
	ExtraFeatures   []string
	DeviceHandlers  []string
	StorageHandlers []string
}

// Details answers GetGuestDetails.
func (g *Guest) Details(_ context.Context, req DetailsRequest) (*Details, error) {
	resp := &Details{}
	if req.MemBlockSize {
		n, err := g.memBlockSize()
		if err != nil {
			return nil, err
		}
		resp.MemBlockSizeBytes = n
	}
	if req.MemHotplugProbe {
		_, err := os.Stat(g.probePath())
		switch {
		case err == nil:
			resp.SupportMemHotplugProbe = true
		case !errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("memory hot-plug probe: %w", err)
		}
	}
	d := AgentDetails{
		Version:         g.o.Version,
		InitDaemon:      os.Getpid() == 1,
		SupportsSeccomp: seccomp.Enabled && g.seccomp(),
		ExtraFeatures:   ExtraFeatures(),
		DeviceHandlers:  []string{},
		StorageHandlers: []string{},
	}
	if g.o.StorageHandlers != nil {
		d.StorageHandlers = g.o.StorageHandlers()
	}
	if g.o.DeviceHandlers != nil {
		d.DeviceHandlers = g.o.DeviceHandlers()
	}
	resp.Agent = d
	return resp, nil
}

func (g *Guest) probePath() string {
	return filepath.Join(g.o.Sysfs, "devices/system/memory/probe")
}

// memBlockSize reads the hex block size; a kernel without memory hot-plug
// has no such file, which reports 0 as Kata does.
func (g *Guest) memBlockSize() (uint64, error) {
	b, err := os.ReadFile(filepath.Join(g.o.Sysfs, "devices/system/memory/block_size_bytes"))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("memory block size: %w", err)
	}
	return ParseBlockSize(string(b))
}

// ParseBlockSize parses sysfs' block_size_bytes: hex without a 0x prefix.
func ParseBlockSize(s string) (uint64, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	n, err := strconv.ParseUint(s, 16, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("Invalid block size %q", s)
	}
	return n, nil
}

// seccomp reports whether the kernel has seccomp (the agent's own ability to
// apply filters, seccomp.Enabled, is checked by the caller): /proc/<pid>/status has a
// Seccomp line only with CONFIG_SECCOMP, and the filter mode containers
// use needs Seccomp_filters as well where the kernel is new enough to say.
func (g *Guest) seccomp() bool {
	f, err := os.Open(filepath.Join(g.o.Proc, "self/status"))
	if err != nil {
		return false
	}
	defer f.Close()
	return ParseSeccompStatus(bufio.NewScanner(f))
}

// ParseSeccompStatus reads a /proc/<pid>/status stream.
func ParseSeccompStatus(sc *bufio.Scanner) bool {
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "Seccomp:") {
			return true
		}
	}
	return false
}
