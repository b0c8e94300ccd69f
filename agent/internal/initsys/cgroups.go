package initsys

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// mountCgroups mounts cgroup2 at /sys/fs/cgroup when unified, and otherwise a
// tmpfs there with one cgroup v1 hierarchy per enabled controller, plus
// cgroup2 at /sys/fs/cgroup/unified (the hybrid layout systemd uses).
func mountCgroups(unified bool) error {
	const root = "/sys/fs/cgroup"
	if unified {
		return mountOnce(mountSpec{"cgroup2", root, "cgroup2", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "nsdelegate"})
	}
	if err := mountOnce(mountSpec{"tmpfs", root, "tmpfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "mode=0755"}); err != nil {
		return err
	}
	controllers, err := v1Controllers("/proc/cgroups")
	if err != nil {
		return err
	}
	for _, c := range controllers {
		if err := mountOnce(mountSpec{"cgroup", root + "/" + c, "cgroup", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, c}); err != nil {
			return err
		}
	}
	return mountOnce(mountSpec{"cgroup2", root + "/unified", "cgroup2", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""})
}

// v1Controllers lists the enabled controllers in /proc/cgroups.
func v1Controllers(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cgroups: %w", err)
	}
	defer f.Close()
	var out []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 4 || strings.HasPrefix(fields[0], "#") || fields[3] != "1" {
			continue
		}
		out = append(out, fields[0])
	}
	return out, s.Err()
}
