package initsys

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestListedModulesAndDeps(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc/modules-load.d"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/modules-load.d/a.conf"), []byte("# comment\nvirtio-pci\n\n; other\nerofs\n"), 0o644)
	got, err := listedModules(filepath.Join(root, "etc/modules-load.d"))
	if err != nil || !reflect.DeepEqual(got, []string{"virtio_pci", "erofs"}) {
		t.Fatalf("listed = %v, %v", got, err)
	}
	dep := filepath.Join(root, "modules.dep")
	os.WriteFile(dep, []byte("kernel/fs/erofs/erofs.ko.xz: kernel/lib/b.ko.xz kernel/lib/a.ko.xz\nkernel/lib/a.ko.xz:\nkernel/lib/b.ko.xz: kernel/lib/a.ko.xz\n"), 0o644)
	deps, err := readModulesDep(dep)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"kernel/fs/erofs/erofs.ko.xz", "kernel/lib/b.ko.xz", "kernel/lib/a.ko.xz"}; !reflect.DeepEqual(deps["erofs"], want) {
		t.Fatalf("deps = %v", deps["erofs"])
	}
}

// The loader inserts dependencies first and each module once. Inserting
// a real module needs a guest kernel and is exercised by the VM test.
func TestLoadOrder(t *testing.T) {
	var order []string
	l := &loader{
		deps: map[string][]string{
			"erofs": {"erofs.ko", "b.ko", "a.ko"},
			"b":     {"b.ko", "a.ko"},
			"a":     {"a.ko"},
		},
		done:   map[string]bool{},
		insert: func(name, _ string) error { order = append(order, name); return nil },
	}
	for _, m := range []string{"erofs", "b", "builtin"} {
		if err := l.load(m, 0); err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{"a", "b", "erofs"}; !reflect.DeepEqual(order, want) {
		t.Fatalf("order = %v, want %v", order, want)
	}
}

func TestDependencyLoopIsBounded(t *testing.T) {
	deps := map[string][]string{}
	for i := 0; i < 40; i++ {
		deps[fmt.Sprintf("m%d", i)] = []string{fmt.Sprintf("m%d.ko", i), fmt.Sprintf("m%d.ko", i+1)}
	}
	l := &loader{deps: deps, done: map[string]bool{}, insert: func(string, string) error { return nil }}
	if err := l.load("m0", 0); err == nil {
		t.Fatal("a 40-deep chain was accepted")
	}
}
