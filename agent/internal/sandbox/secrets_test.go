package sandbox_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/cocoon-tee/cocoon/agent/internal/sandbox"
)

// fakeUnseal stands in for the attestation side: "sealed.good" unseals,
// anything else fails as a bad signature does.
func fakeUnseal(_ context.Context, v string) (string, error) {
	if v == "sealed.good" {
		return "plain-secret", nil
	}
	return "", errdefs.ErrPermissionDenied.WithMessage("sealed secret: signature does not verify")
}

// Secret volume files that hold sealed secrets are unsealed before the
// container starts, as Kata's agent does (src/agent/src/rpc.rs:2693
// cdh_handler_sealed_secrets; confidential_data_hub/mod.rs:201 unseal_file
// walks the Kubernetes "..data" layout). The plaintext never lands in the
// run dir, which the host may share: the container sees a private copy.
func TestSealedSecretFilesUnsealed(t *testing.T) {
	p := newPodOpts(t, func(o *sandbox.Options) { o.UnsealFile = fakeUnseal })
	shared := filepath.Join(p.run, "shared", "containers")
	// One file shared on its own (subPath, or the runtime's CopyFile of a
	// single key), with the newline "kubectl create secret --from-file" keeps.
	token := writeFile(t, filepath.Join(shared, "c1-0123456789abcdef-token"), "sealed.good\n")
	// A Secret volume as kubelet writes it and the runtime copies it:
	// keys are links through ..data into a timestamped directory.
	vol := filepath.Join(shared, "c1-fedcba9876543210-creds")
	writeFile(t, filepath.Join(vol, "..2025_01_01_00_00_00.1", "user"), "alice")
	writeFile(t, filepath.Join(vol, "..2025_01_01_00_00_00.1", "pass"), "sealed.good")
	symlink(t, "..2025_01_01_00_00_00.1", filepath.Join(vol, "..data"))
	symlink(t, "..data/user", filepath.Join(vol, "user"))
	symlink(t, "..data/pass", filepath.Join(vol, "pass"))
	// Files every pod has are not secrets, whatever they hold (Kata skips
	// them by name too).
	hosts := writeFile(t, filepath.Join(shared, "c1-00112233445566ff-hosts"), "sealed.not-a-secret")

	s := specFor(p.rootfs(t, "c1"), "sh", "-c", "cat /etc/token; echo; cat /creds/user /creds/pass; echo; cat /etc/hosts; echo; ls /creds | sort | tr '\\n' ' '")
	bindAt(s, token, "/etc/token", "ro")
	bindAt(s, vol, "/creds", "ro")
	bindAt(s, hosts, "/etc/hosts", "ro")
	got := p.output(t, sandbox.ContainerRequest{ID: "c1", Spec: s})
	if want := "plain-secret\nalice" + "plain-secret\nsealed.not-a-secret\npass user "; got != want {
		t.Fatalf("container read %q, want %q", got, want)
	}
	// The host's copies still hold only sealed values.
	err := filepath.Walk(p.run, func(path string, info os.FileInfo, err error) error {
		if err != nil || !info.Mode().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		if err == nil && strings.Contains(string(b), "plain-secret") {
			t.Errorf("plaintext in the run dir: %s", path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(p.state, "secrets", "c1")); !os.IsNotExist(err) {
		t.Errorf("removed container's plaintext left behind: %v", err)
	}
}

// A secret that does not unseal refuses the container (Kata logs a warning
// and starts it with the sealed value): the error names the mount and keeps
// its class, and nothing of the container or its plaintext stays.
func TestSealedSecretFileFailureRefuses(t *testing.T) {
	p := newPodOpts(t, func(o *sandbox.Options) { o.UnsealFile = fakeUnseal })
	shared := filepath.Join(p.run, "shared", "containers")
	good := writeFile(t, filepath.Join(shared, "c1-0123456789abcdef-a"), "sealed.good")
	vol := filepath.Join(shared, "c1-fedcba9876543210-creds")
	writeFile(t, filepath.Join(vol, "pass"), "sealed.forged")
	s := bindAt(bindAt(specFor(p.rootfs(t, "c1"), "true"), good, "/etc/a"), vol, "/creds")
	_, err := p.CreateContainer(context.Background(), sandbox.ContainerRequest{ID: "c1", Spec: s})
	if !errors.Is(err, errdefs.ErrPermissionDenied) || !strings.Contains(err.Error(), "/creds/pass") || !strings.Contains(err.Error(), "c1") {
		t.Fatalf("CreateContainer: %v, want PERMISSION_DENIED naming the container and /creds/pass", err)
	}
	if len(p.Containers()) != 0 {
		t.Fatalf("refused container registered: %v", p.Containers())
	}
	if _, err := os.Stat(filepath.Join(p.state, "secrets", "c1")); !os.IsNotExist(err) {
		t.Fatalf("refused container's plaintext left behind: %v", err)
	}
	big := writeFile(t, filepath.Join(shared, "c1-0123456789abcdef-big"), "sealed."+strings.Repeat("x", 64<<10))
	_, err = p.CreateContainer(context.Background(), sandbox.ContainerRequest{ID: "c1", Spec: bindAt(specFor(p.rootfs(t, "c1"), "true"), big, "/etc/big")})
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("oversized sealed file: %v", err)
	}
}
