package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// persistentNS creates new IPC and UTS namespaces (the UTS one named
// hostname) and pins them by bind-mounting their nsfs files into dir, so
// that containers can join them while no process lives in them.
//
// The namespaces are made on a locked OS thread that is never unlocked: when
// the goroutine returns, the Go runtime discards that thread, so no other
// goroutine ever runs inside the new namespaces.
func persistentNS(dir, hostname string) (ipc, uts string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("namespace dir: %w", err)
	}
	ipc, uts = filepath.Join(dir, "ipc"), filepath.Join(dir, "uts")
	for _, p := range []string{ipc, uts} {
		f, err := os.OpenFile(p, os.O_CREATE|os.O_RDONLY, 0o600)
		if err != nil {
			return "", "", fmt.Errorf("namespace file: %w", err)
		}
		f.Close()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Deliberately no UnlockOSThread: see above.
		if err := unix.Unshare(unix.CLONE_NEWIPC | unix.CLONE_NEWUTS); err != nil {
			errc <- fmt.Errorf("unshare ipc/uts: %w", err)
			return
		}
		if hostname != "" {
			if err := unix.Sethostname([]byte(hostname)); err != nil {
				errc <- fmt.Errorf("set hostname %q: %w", hostname, err)
				return
			}
		}
		tid := unix.Gettid()
		for name, target := range map[string]string{"ipc": ipc, "uts": uts} {
			src := fmt.Sprintf("/proc/self/task/%d/ns/%s", tid, name)
			if err := unix.Mount(src, target, "", unix.MS_BIND, ""); err != nil {
				errc <- fmt.Errorf("pin %s namespace: %w", name, err)
				return
			}
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		return "", "", errors.Join(err, releaseNS(ipc, uts))
	}
	return ipc, uts, nil
}

// releaseNS unpins namespace files; a namespace disappears once its last
// member and pin are gone.
func releaseNS(paths ...string) error {
	var errs []error
	for _, p := range paths {
		if p == "" {
			continue
		}
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
