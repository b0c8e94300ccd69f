package storage

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"

	"github.com/cocoon-tee/cocoon/internal/errs"
)

// An encrypted ephemeral disk is what Kata's agent asks the confidential
// data hub's secure mount for (src/agent/src/storage/block_handler.rs
// handle_block_storage, src/agent/src/rpc.rs cdh_secure_mount): LUKS2 with
// integrity (agent.secure_storage_integrity defaults to true,
// src/agent/src/config.rs), formatted over an empty disk with a random key
// (guest-components confidential-data-hub/hub/src/storage/drivers/luks2.rs,
// volume_type/blockdevice/mod.rs). cocoon does the same with the cryptsetup
// binary: dm-integrity's on-disk format and LUKS2 are large, and the tool
// that defines them is the one Kata's own path runs, so the disks are the
// same; the key goes to it on stdin and never touches a file system.

const (
	cryptsetupBin = "cryptsetup"
	// keyBytes of randomness. The key only unlocks a keyslot in a header
	// that lives in guest memory; cryptsetup makes the volume key itself.
	keyBytes = 64
	// integrityAlg is Kata's default (CDH luks2.rs HMAC_SHA256): every
	// 4 KiB sector carries an HMAC, so the host cannot alter or replay
	// blocks unnoticed, only destroy them.
	integrityAlg = "hmac-sha256"
)

// encryptedDisk is a disk opened through dm-crypt with integrity.
type encryptedDisk struct {
	name   string // device-mapper name
	mapper string // its /dev/mapper path
}

// cryptPreflight checks everything an encrypted disk needs before the disk
// is touched, so a guest that cannot encrypt refuses instead of falling back
// to a plain disk.
func (b *builtin) cryptPreflight() error {
	for _, tool := range []string{cryptsetupBin, "mkfs.ext4"} {
		if _, err := exec.LookPath(tool); err != nil {
			return errs.Newf(errdefs.ErrFailedPrecondition,
				"encrypted block storage needs %s in the guest image: %v (refusing to use the disk unencrypted)", tool, err)

		}
	}
	targets, err := dmTargets(b.cryptControl())
	if err != nil {
		return errs.Newf(errdefs.ErrFailedPrecondition,
			"encrypted block storage needs the kernel's device-mapper: %v", err)

	}
	for _, t := range []string{"crypt", "integrity"} {
		if !targets[t] {
			return errs.Newf(errdefs.ErrFailedPrecondition,
				"encrypted block storage needs the device-mapper %q target (dm-%s) in the guest kernel; "+
					"refusing rather than encrypting without integrity or not at all", t, t)

		}
	}
	return nil
}

func (b *builtin) cryptControl() string {
	if b.opts.DMControl != "" {
		return b.opts.DMControl
	}
	return filepath.Join(b.opts.DevRoot, "mapper", "control")
}

// openEncrypted formats dev as LUKS2 with integrity under a fresh random
// key and opens it. The LUKS header goes to a file in guest memory, not to
// the disk, and is deleted once the mapping exists: the host never sees a
// keyslot, and cannot swap the header for one without integrity between
// format and open. With the header gone the key is unrecoverable, which is
// what an ephemeral disk wants.
func (b *builtin) openEncrypted(ctx context.Context, dev string) (*encryptedDisk, error) {
	key := make([]byte, keyBytes)
	defer clear(key)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("ephemeral key: %w", err)
	}
	dir := b.opts.CryptDir
	if dir == "" {
		dir = "/run/cocoon-crypt"
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("LUKS header directory: %w", err)
	}
	hdir, err := os.MkdirTemp(dir, "luks-")
	if err != nil {
		return nil, fmt.Errorf("LUKS header directory: %w", err)
	}
	defer os.RemoveAll(hdir)
	header := filepath.Join(hdir, "header")

	prefix := b.opts.CryptName
	if prefix == "" {
		prefix = "cocoon-crypt"
	}
	d := &encryptedDisk{name: prefix + "-" + strconv.FormatUint(b.cryptSeq.Add(1), 10)}
	d.mapper = filepath.Join(b.opts.DevRoot, "mapper", d.name)

	err = runCryptsetup(ctx, key, "luksFormat", "--batch-mode", "--type", "luks2",
		"--cipher", "aes-xts-plain64", "--sector-size", "4096",
		"--integrity", integrityAlg,
		// The disk is new and its old contents are never read: a
		// wipe of the whole disk would cost its full size in writes.
		// mkfsIntegrity writes what mkfs reads before writing.
		"--integrity-no-wipe", "--integrity-no-journal",
		// The key is 512 random bits: stretching it buys nothing, and
		// argon2id's default 1 GiB would not fit a small guest.
		"--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000",
		"--header", header, "--key-file=-", dev)
	if err != nil {
		return nil, err
	}
	// No journal: the data dies with the key on any crash or reboot, so
	// torn writes need no recovery.
	if err := runCryptsetup(ctx, key, "open", "--type", "luks2", "--header", header,
		"--integrity-no-journal", "--key-file=-", dev, d.name); err != nil {
		return nil, err
	}
	return d, nil
}

// encryptedBlock formats dev as an encrypted ext4 with a throw-away key and
// mounts it; releasing it unmounts and closes the mapping.
func (b *builtin) encryptedBlock(ctx context.Context, s *Storage, dev string, o MountOptions) (Mounted, error) {
	if err := b.cryptPreflight(); err != nil {
		return Mounted{}, err
	}
	d, err := b.openEncrypted(ctx, dev)
	if err != nil {
		return Mounted{}, fmt.Errorf("encrypting %s: %w", dev, err)
	}
	if err := makeExt4Integrity(ctx, d.mapper, ext4Opts); err != nil {
		return Mounted{}, joinCleanup(ctx, err, d.close)
	}
	mt, err := b.common(ctx, s, d.mapper, o)
	if err != nil {
		return Mounted{}, joinCleanup(ctx, err, d.close)
	}
	unmount := mt.Cleanup
	mt.Cleanup = func(ctx context.Context) error {
		if err := unmount(ctx); err != nil {
			return err
		}
		return d.close(ctx)
	}
	b.log.InfoContext(ctx, "storage encrypted", "driver", s.Driver, "device", dev, "mapper", d.name, "integrity", integrityAlg)
	return mt, nil
}

// close removes the mapping; the key is gone with it.
func (d *encryptedDisk) close(ctx context.Context) error {
	return runCryptsetup(ctx, nil, "close", d.name)
}

// runCryptsetup runs cryptsetup with the key, if any, on stdin.
func runCryptsetup(ctx context.Context, key []byte, args ...string) error {
	cmd := exec.CommandContext(ctx, cryptsetupBin, args...)
	cmd.Stdin = bytes.NewReader(key)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(out.String())
		if len(msg) > 1024 {
			msg = msg[:1024]
		}
		return fmt.Errorf("cryptsetup %s: %w: %s", args[0], err, msg)
	}
	return nil
}

// cryptKey reads the value of an encryption_key driver option; only
// "ephemeral" exists in Kata (virtcontainers/mount.go EncryptionKey).
func cryptKey(opt string) (ephemeral bool, err error) {
	v, ok := strings.CutPrefix(opt, "encryption_key=")
	if !ok {
		return false, nil
	}
	if v != "ephemeral" {
		return false, invalid("driver option %q: the only key is \"ephemeral\"", opt)
	}
	return true, nil
}
