package initsys

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// LoadModules loads the kernel modules listed in root/etc/modules-load.d/*.conf,
// each after the modules it depends on (modules.dep of the running kernel).
// A module that is built in or already loaded is not an error. Device
// drivers are not autoloaded when the agent is init (there is no udev), so a
// stock kernel needs this for virtio, vsock and dm-verity.
func LoadModules(root string) error {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return err
	}
	modDir := filepath.Join(root, "lib/modules", unix.ByteSliceToString(u.Release[:]))
	wanted, err := listedModules(filepath.Join(root, "etc/modules-load.d"))
	if err != nil || len(wanted) == 0 {
		return err
	}
	deps, err := readModulesDep(filepath.Join(modDir, "modules.dep"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil // every module is built in
		}
		return err
	}
	l := &loader{deps: deps, done: map[string]bool{}, insert: func(name, file string) error {
		return insertModule(name, filepath.Join(modDir, file))
	}}
	var errs []error
	for _, m := range wanted {
		if err := l.load(m, 0); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// listedModules reads every *.conf: one module name per line, '#' and ';' comments.
func listedModules(dir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.conf"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(string(data), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || line[0] == '#' || line[0] == ';' {
				continue
			}
			out = append(out, normalise(line))
		}
	}
	return out, nil
}

// readModulesDep maps a module name to its file and its dependencies' files.
func readModulesDep(path string) (map[string][]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	deps := map[string][]string{}
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		file, rest, ok := strings.Cut(s.Text(), ":")
		if !ok {
			continue
		}
		deps[moduleName(file)] = append([]string{file}, strings.Fields(rest)...)
	}
	return deps, s.Err()
}

type loader struct {
	deps   map[string][]string
	done   map[string]bool
	insert func(name, file string) error
}

// maxDepth stops a corrupt modules.dep from recursing forever.
const maxDepth = 32

func (l *loader) load(name string, depth int) error {
	if l.done[name] {
		return nil
	}
	l.done[name] = true
	entry, ok := l.deps[name]
	if !ok {
		return nil // built in, or not shipped: nothing to load
	}
	if depth > maxDepth {
		return fmt.Errorf("module %s: dependency chain deeper than %d", name, maxDepth)
	}
	// modules.dep lists dependencies so that the last must load first.
	for i := len(entry) - 1; i >= 1; i-- {
		if err := l.load(moduleName(entry[i]), depth+1); err != nil {
			return err
		}
	}
	return l.insert(name, entry[0])
}

// insertModule loads one module file; one already loaded is fine.
func insertModule(name, file string) error {
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("module %s: %w", name, err)
	}
	defer f.Close()
	flags := 0
	if strings.HasSuffix(file, ".xz") || strings.HasSuffix(file, ".zst") || strings.HasSuffix(file, ".gz") {
		flags = unix.MODULE_INIT_COMPRESSED_FILE
	}
	if err := unix.FinitModule(int(f.Fd()), "", flags); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("module %s: %w", name, err)
	}
	return nil
}

// moduleName turns "kernel/fs/erofs/erofs.ko.xz" into "erofs".
func moduleName(file string) string {
	base := filepath.Base(file)
	if i := strings.Index(base, ".ko"); i >= 0 {
		base = base[:i]
	}
	return normalise(base)
}

// normalise: the kernel treats '-' and '_' in module names alike.
func normalise(name string) string { return strings.ReplaceAll(name, "-", "_") }
