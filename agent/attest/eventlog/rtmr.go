package eventlog

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/go-configfs-tsm/configfs/configfsi"
	"github.com/google/go-configfs-tsm/configfs/linuxtsm"
	"github.com/google/go-configfs-tsm/rtmr"
)

// SysfsMeasurements is the TDX guest driver's register directory (Linux 6.16+).
const SysfsMeasurements = "/sys/devices/virtual/misc/tdx_guest/measurements"

// configfsRTMRs is configfs-tsm's runtime measurement interface.
const configfsRTMRs = "/sys/kernel/config/tsm/rtmrs"

// SysfsRTMR extends an RTMR through the tdx_guest sysfs file rtmr<N>:sha384.
type SysfsRTMR struct {
	Dir   string
	Index int
}

// Extend implements Extender.
func (s SysfsRTMR) Extend(digest []byte) error {
	if len(digest) != 48 {
		return fmt.Errorf("rtmr: digest is %d bytes, want 48", len(digest))
	}
	return os.WriteFile(filepath.Join(s.Dir, fmt.Sprintf("rtmr%d:sha384", s.Index)), digest, 0)
}

// ConfigfsRTMR extends an RTMR through configfs-tsm.
type ConfigfsRTMR struct {
	Client configfsi.Client
	Index  int
}

// Extend implements Extender.
func (c ConfigfsRTMR) Extend(digest []byte) error {
	return rtmr.ExtendDigest(c.Client, c.Index, digest)
}

// DetectRTMR returns the kernel's RTMR interface for RTMRIndex, or nil when
// there is none (not TDX, or an older kernel).
func DetectRTMR() (Extender, error) {
	if _, err := os.Stat(SysfsMeasurements); err == nil {
		return SysfsRTMR{Dir: SysfsMeasurements, Index: RTMRIndex}, nil
	}
	if _, err := os.Stat(configfsRTMRs); err == nil {
		c, err := linuxtsm.MakeClient()
		if err != nil {
			return nil, err
		}
		return ConfigfsRTMR{Client: c, Index: RTMRIndex}, nil
	}
	return nil, nil
}
