package storage

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

// The hugepage pool is sysfs; a fake tree stands in for it (reserving real
// huge pages on a shared test machine would take memory from everyone).
func TestReserveHugepages(t *testing.T) {
	sys := t.TempDir()
	pool := filepath.Join(sys, "kernel/mm/hugepages/hugepages-2048kB")
	if err := os.MkdirAll(pool, 0o755); err != nil {
		t.Fatal(err)
	}
	nr := filepath.Join(pool, "nr_hugepages")
	if err := os.WriteFile(nr, []byte("0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b := &builtin{opts: Options{SysfsRoot: sys}}
	opts := func(s ...string) MountOptions {
		o, err := ParseOptions(s)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	if err := b.reserveHugepages(opts("pagesize=2097152", "size=104857600")); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(nr); string(got) != "50" {
		t.Errorf("nr_hugepages = %q, want 50", got)
	}
	for _, bad := range [][]string{
		{"size=104857600"},
		{"pagesize=2097152"},
		{"pagesize=2097152", "size=1k"},
		{"pagesize=1000", "size=104857600"},
		{"pagesize=1073741824", "size=2147483648"}, // no 1 GiB pool in the fake tree
	} {
		if err := b.reserveHugepages(opts(bad...)); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%v: %v", bad, err)
		}
	}
	// A pool that cannot be written is an error, not a silent success.
	b.opts.SysfsRoot = t.TempDir()
	short := filepath.Join(b.opts.SysfsRoot, "kernel/mm/hugepages/hugepages-2048kB")
	if err := os.MkdirAll(filepath.Join(short, "nr_hugepages"), 0o755); err != nil { // a directory: write fails
		t.Fatal(err)
	}
	if err := b.reserveHugepages(opts("pagesize=2097152", "size=4194304")); err == nil || !strings.Contains(err.Error(), "huge pages") {
		t.Errorf("unwritable pool: %v", err)
	}
}
