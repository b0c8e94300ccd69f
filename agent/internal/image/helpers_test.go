package image

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cocoon-tee/cocoon/agent/internal/image/imgconfig"
	"github.com/cocoon-tee/cocoon/agent/internal/image/layerstore"
	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
	"github.com/cocoon-tee/cocoon/internal/testutil/testregistry"
)

// fixture is one test's registry, configuration files and layer store.
type fixture struct {
	t     testing.TB
	dir   string
	reg   *testregistry.Registry
	conf  imgconfig.Config
	store *layerstore.Store
	// hosts are the registries (registry, proxies) registries.conf marks insecure.
	hosts []string
}

func newFixture(t *testing.T, opts ...testregistry.Option) *fixture {
	t.Helper()
	testenv.RequiresRoot(t)
	dir := t.TempDir()
	f := &fixture{t: t, dir: dir, reg: testregistry.Start(t, opts...)}
	f.hosts = []string{f.reg.Addr}
	f.conf.MaxConcurrentLayerDownloadsPerImage = 3
	return f
}

// write stores a configuration document and returns its file:// URI.
func (f *fixture) write(name, body string) string {
	f.t.Helper()
	p := filepath.Join(f.dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		f.t.Fatal(err)
	}
	return "file://" + p
}

// puller builds a Puller over a fresh store (once per fixture).
func (f *fixture) puller(mod ...func(*Options)) *Puller {
	f.t.Helper()
	var rc strings.Builder
	fmt.Fprintf(&rc, "unqualified-search-registries = [%q]\n", f.reg.Addr)
	for _, h := range f.hosts {
		fmt.Fprintf(&rc, "[[registry]]\nlocation = %q\ninsecure = true\n", h)
	}
	f.conf.RegistryConfigurationURI = f.write("registries.conf", rc.String())
	if f.store == nil {
		s, err := layerstore.Open(filepath.Join(f.dir, "store"))
		if err != nil {
			f.t.Fatal(err)
		}
		f.store = s
	}
	o := Options{Config: f.conf, Store: f.store}
	for _, m := range mod {
		m(&o)
	}
	p, err := New(context.Background(), o)
	if err != nil {
		f.t.Fatal(err)
	}
	return p
}

// busybox builds a busybox image with extra layers in a new directory.
func (f *fixture) build(name string, layers ...testregistry.Layer) string {
	f.t.Helper()
	all := append([]testregistry.Layer{func(t testing.TB, rootfs string) { testenv.BusyboxRootfs(t, rootfs) }}, layers...)
	return testregistry.Build(f.t, filepath.Join(f.dir, "build-"+name), []string{"/bin/sh"}, all...)
}

// storedLayers lists the complete layers and in-progress fills.
func (f *fixture) storedLayers() (layers, tmp []string) {
	f.t.Helper()
	read := func(d string) []string {
		ents, err := os.ReadDir(filepath.Join(f.store.Root(), d))
		if err != nil {
			f.t.Fatal(err)
		}
		var out []string
		for _, e := range ents {
			out = append(out, e.Name())
		}
		return out
	}
	return read("layers"), read("tmp")
}
