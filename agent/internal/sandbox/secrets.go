package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/internal/errs"
)

// sealedPrefix starts a sealed secret (CoCo's "sealed.<JWS>", the same
// marker the environment unsealer looks for).
const sealedPrefix = "sealed."

// Bounds on what is read while looking for sealed secret files: a sealed
// value is a short JWS (agent/internal/attest/sealed limits it to 64 KiB), and a
// Secret volume holds a handful of keys.
const (
	maxSealedFile  = 64 << 10
	maxVolumeFiles = 1024
)

// notSecrets are the shared files a pod always has that are never Secret
// volumes; Kata skips the same names (src/agent/src/rpc.rs:2606
// is_sealed_secret_path).
var notSecrets = []string{"resolv.conf", "termination-log", "hostname", "hosts", "serviceaccount"}

// unsealMounts replaces sealed secrets in the files the runtime shares for a
// container (Secret volumes: <run>/shared/containers/<cid>-<hex>-<name>, a
// file or a directory of files, copied by CopyFile or watched). Kata's agent
// unseals them next to the shared copy (rpc.rs:2693 cdh_handler_sealed_secrets,
// confidential_data_hub/mod.rs:201 unseal_file) and only logs a failure; here
// the plaintext goes to a file under the agent's private state directory that
// is bound in place of the sealed one — the host never sees it, whatever it
// shares — and a failure refuses the container. A directory keeps its other
// entries: each sealed entry gets a read-only bind of its own over it.
// Spec sources are checked and staged already (prepareSpec, stageMounts):
// whether a source may hold a secret is judged by the checked path, its
// content read through the staging bind.
func (s *Sandbox) unsealMounts(ctx context.Context, spec *specs.Spec, cid string, staged *staging) error {
	if s.o.UnsealFile == nil {
		return nil
	}
	out := make([]specs.Mount, 0, len(spec.Mounts))
	n := 0
	for _, m := range spec.Mounts {
		if !isBind(&m) || !s.mayHoldSecret(staged.originOf(m.Source)) {
			out = append(out, m)
			continue
		}
		st, err := os.Stat(m.Source)
		if err != nil {
			return errs.Newf(errdefs.ErrInvalidArgument, "mount source %q: %v", staged.originOf(m.Source), err)
		}
		if st.Mode().IsRegular() {
			plain, err := s.unsealOne(ctx, m.Source, cid, &n)
			if err != nil {
				return fmt.Errorf("secret file mounted at %s: %w", m.Destination, err)
			}
			if plain != "" {
				m.Source = plain
			}
			out = append(out, m)
			continue
		}
		if !st.IsDir() {
			out = append(out, m)
			continue
		}
		over, err := s.unsealDir(ctx, m, cid, &n)
		if err != nil {
			return err
		}
		out = append(append(out, m), over...)
	}
	spec.Mounts = out
	return nil
}

// mayHoldSecret reports whether a resolved bind source is a file the
// runtime shares for containers, other than the ones every pod has.
func (s *Sandbox) mayHoldSecret(src string) bool {
	rel, err := filepath.Rel(filepath.Join(s.runDir, sharedDir, containerDir), src)
	if err != nil || rel == "." || strings.HasPrefix(rel, "../") || rel == ".." {
		return false
	}
	for _, suf := range notSecrets {
		if strings.HasSuffix(src, suf) {
			return false
		}
	}
	return true
}

// unsealDir unseals the sealed files among a shared directory's entries
// (one level, as Kata reads it: the Kubernetes layout "key -> ..data/key"
// puts every key there) and returns the binds that lay their plaintext
// over them. An entry whose target leaves the directory is not the
// volume's and is left alone.
func (s *Sandbox) unsealDir(ctx context.Context, m specs.Mount, cid string, n *int) ([]specs.Mount, error) {
	ents, err := os.ReadDir(m.Source)
	if err != nil {
		return nil, errs.Newf(errdefs.ErrInvalidArgument, "mount source %q: %v", m.Source, err)
	}
	if len(ents) > maxVolumeFiles {
		return nil, errs.Newf(errdefs.ErrInvalidArgument, "mount source %q has %d entries, more than %d", m.Source, len(ents), maxVolumeFiles)
	}
	var over []specs.Mount
	for _, e := range ents {
		if !e.Type().IsRegular() && e.Type()&os.ModeSymlink == 0 {
			continue
		}
		target, err := filepath.EvalSymlinks(filepath.Join(m.Source, e.Name()))
		if err != nil || !within(target, m.Source) {
			continue
		}
		if st, err := os.Stat(target); err != nil || !st.Mode().IsRegular() {
			continue
		}
		dest := filepath.Join(m.Destination, e.Name())
		plain, err := s.unsealOne(ctx, target, cid, n)
		if err != nil {
			return nil, fmt.Errorf("secret file mounted at %s: %w", dest, err)
		}
		if plain != "" {
			over = append(over, specs.Mount{Destination: dest, Type: "bind", Source: plain, Options: []string{"bind", "ro", "nosuid", "nodev", "noexec"}})
		}
	}
	return over, nil
}

// unsealOne returns the private file holding the plaintext of path when
// path holds a sealed secret, and "" when it does not.
func (s *Sandbox) unsealOne(ctx context.Context, path, cid string, n *int) (string, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return "", errs.Newf(errdefs.ErrInvalidArgument, "open %s: %v", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return "", nil
	}
	head := make([]byte, len(sealedPrefix))
	if _, err := io.ReadFull(f, head); err != nil || !bytes.Equal(head, []byte(sealedPrefix)) {
		return "", nil
	}
	rest, err := io.ReadAll(io.LimitReader(f, maxSealedFile))
	if err != nil {
		return "", fmt.Errorf("read sealed secret: %w", err)
	}
	if len(head)+len(rest) > maxSealedFile {
		return "", errs.Newf(errdefs.ErrInvalidArgument, "file starts with %q but is larger than %d bytes", sealedPrefix, maxSealedFile)
	}
	// A value written with "kubectl create secret --from-file" may end in a
	// newline, which is no part of the JWS.
	value := strings.TrimRight(string(head)+string(rest), "\r\n")
	dir, err := s.secretDir(cid)
	if err != nil {
		return "", err
	}
	plain, err := s.o.UnsealFile(ctx, value)
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, strconv.Itoa(*n))
	*n++
	if err := writePrivate(out, []byte(plain), st); err != nil {
		return "", err
	}
	return out, nil
}

// secretDir makes the container's directory for unsealed files. It must not
// lie where the host can read: the state directory inside the run dir's
// shared part would hand the plaintext to a shared file system.
func (s *Sandbox) secretDir(cid string) (string, error) {
	shared := filepath.Join(s.runDir, sharedDir)
	if overlaps(s.o.StateDir, shared) {
		return "", errs.Newf(errdefs.ErrFailedPrecondition, "state dir %s lies in %s, which the host may see: no place for unsealed secrets", s.o.StateDir, shared)
	}
	dir := s.secretsOf(cid)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("secrets dir: %w", err)
	}
	return dir, nil
}

func (s *Sandbox) secretsOf(cid string) string { return filepath.Join(s.o.StateDir, "secrets", cid) }

// writePrivate writes the plaintext with the shared file's mode and owner,
// so the container reads it as it would have read the sealed file.
func writePrivate(path string, data []byte, like os.FileInfo) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("write unsealed secret: %w", err)
	}
	_, werr := f.Write(data)
	var cerr error
	if sys, ok := like.Sys().(*syscall.Stat_t); ok {
		cerr = f.Chown(int(sys.Uid), int(sys.Gid))
	}
	err = errors.Join(werr, cerr, f.Chmod(like.Mode().Perm()), f.Close())
	if err != nil {
		return fmt.Errorf("write unsealed secret: %w", err)
	}
	return nil
}
