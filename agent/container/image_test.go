package container

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func accountsRootfs(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\n# comment\nbroken line\napp:x:1000:1000::/home/app:/bin/sh\n",
		"etc/group":  "root:x:0:\napp:x:1000:\nvideo:x:44:app,other\nwheel:x:10:app\nbad:x:zz:app\n",
	}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestApplyImageConfig(t *testing.T) {
	root := accountsRootfs(t)
	img := &ocispec.ImageConfig{
		Entrypoint: []string{"/entry"}, Cmd: []string{"arg"},
		Env:        []string{"PATH=/img", "A=img", "B=img"},
		WorkingDir: "/work", User: "app",
	}
	cases := []struct {
		name string
		in   specs.Process
		want specs.Process
	}{
		{"empty spec takes everything",
			specs.Process{},
			specs.Process{Args: []string{"/entry", "arg"}, Env: []string{"PATH=/img", "A=img", "B=img"}, Cwd: "/work",
				User: specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{44, 10}}}},
		{"spec wins per variable and keeps its args, cwd and user",
			specs.Process{Args: []string{"own"}, Env: []string{"A=spec", "C=spec"}, Cwd: "/own", User: specs.User{UID: 5, GID: 5}},
			specs.Process{Args: []string{"own"}, Env: []string{"PATH=/img", "B=img", "A=spec", "C=spec"}, Cwd: "/own", User: specs.User{UID: 5, GID: 5}}},
		{"cwd slash is replaced",
			specs.Process{Args: []string{"x"}, Cwd: "/"},
			specs.Process{Args: []string{"x"}, Env: []string{"PATH=/img", "A=img", "B=img"}, Cwd: "/work",
				User: specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{44, 10}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := c.in
			if err := ApplyImageConfig(&p, img, root); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(p, c.want) {
				t.Errorf("got  %+v\nwant %+v", p, c.want)
			}
		})
	}
	if err := ApplyImageConfig(&specs.Process{}, &ocispec.ImageConfig{User: "ghost"}, root); err == nil {
		t.Error("unknown image user accepted")
	}
}

func TestResolveUser(t *testing.T) {
	root := accountsRootfs(t)
	cases := []struct {
		spec string
		want User
		ok   bool
	}{
		{"", User{}, true},
		{"0", User{}, true},
		{"root", User{}, true},
		{"app", User{UID: 1000, GID: 1000, AdditionalGids: []uint32{44, 10}}, true},
		{"1000", User{UID: 1000, GID: 1000, AdditionalGids: []uint32{44, 10}}, true},
		{"app:video", User{UID: 1000, GID: 44}, true},
		{"app:7", User{UID: 1000, GID: 7}, true},
		{"4242", User{UID: 4242}, true},
		{"4242:4343", User{UID: 4242, GID: 4343}, true},
		{"ghost", User{}, false},
		{"app:ghosts", User{}, false},
		{"-1", User{}, false},
		{"a\x00b", User{}, false},
	}
	for _, c := range cases {
		got, err := ResolveUser(root, c.spec)
		if (err == nil) != c.ok {
			t.Errorf("%q: err %v", c.spec, err)
			continue
		}
		if c.ok && !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q: got %+v want %+v", c.spec, got, c.want)
		}
	}
	// Account files reached through a symlink that leaves the rootfs are
	// read inside it, never from the host.
	evil := t.TempDir()
	os.MkdirAll(filepath.Join(evil, "etc"), 0o755)
	os.Symlink("/etc/passwd", filepath.Join(evil, "etc", "passwd"))
	if _, err := ResolveUser(evil, "root"); err == nil {
		t.Error("resolved root through a symlink to the host's /etc/passwd")
	}
}

func FuzzResolveUser(f *testing.F) {
	root := accountsRootfs(f)
	for _, s := range []string{"app", "1000:44", "app:video", ":", "a:b:c", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = ResolveUser(root, s)
	})
}

func FuzzParseAccounts(f *testing.F) {
	f.Add([]byte("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/:/bin/sh\n"))
	f.Add([]byte("video:x:44:app,other\n::::\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, p := range parsePasswd(data) {
			if p.name == "" {
				t.Fatal("empty passwd name")
			}
		}
		for _, g := range parseGroup(data) {
			if g.name == "" {
				t.Fatal("empty group name")
			}
		}
	})
}
