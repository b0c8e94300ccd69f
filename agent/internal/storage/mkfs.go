package storage

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ext4Opts are the emptyDir file system Kata makes: no journal, no reserved
// blocks, few inodes — scratch space, not a system disk (Kata
// src/agent/src/storage/block_handler.rs BLOCK_EMPTYDIR_EXT4_MKFS_OPTS, the
// same as CDH's EXT4_INTEGRITY_MKFS_OPTS).
var ext4Opts = []string{"-O", "^has_journal", "-m", "0", "-i", "163840", "-I", "128"}

// ext4Block is the block size of encrypted emptyDirs: the dm-crypt sector
// size, so every file system write covers whole integrity-tagged sectors.
const ext4Block = 4096

// maxBackups bounds the superblock backups read from mkfs (an ext4 of 1 EiB
// has fewer than 100).
const maxBackups = 4096

// makeExt4 formats a fresh ext4 emptyDir.
func makeExt4(ctx context.Context, fstype, dev string) error {
	if fstype != "ext4" {
		return invalid("creating a %q file system is not supported (only ext4)", fstype)
	}
	_, err := runMkfs(ctx, append(append([]string{"-F", "-q"}, ext4Opts...), dev)...)
	return err
}

// makeExt4Integrity formats an ext4 on a dm-integrity device that was not
// wiped. Every sector of such a device fails to read until it has been
// written, and mke2fs reads some blocks before it writes them
// (cryptsetup issue 525), so the blocks it will touch that way — block 0
// and the superblock backups, which a dry run lists — are written first,
// and inode tables are initialised now rather than lazily read later. This
// is what CDH does (confidential-data-hub/hub/src/storage/drivers/
// filesystem.rs format_integrity_compatible).
// extra are the file system's shape (ext4Opts for emptyDirs).
func makeExt4Integrity(ctx context.Context, dev string, extra []string) error {
	opts := append([]string{"-F", "-b", strconv.Itoa(ext4Block)}, extra...)
	out, err := runMkfs(ctx, append(append([]string{"-n"}, opts...), dev)...)
	if err != nil {
		return err
	}
	blocks, err := parseSuperblockBackups(out)
	if err != nil {
		return fmt.Errorf("mkfs.ext4 -n %s: %w", dev, err)
	}
	if err := writeZeroBlocks(dev, append([]uint64{0}, blocks...)); err != nil {
		return err
	}
	_, err = runMkfs(ctx, append(append(opts, "-q", "-E", "lazy_itable_init=0,nodiscard"), dev)...)
	return err
}

func runMkfs(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "mkfs.ext4", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("mkfs.ext4 %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// parseSuperblockBackups reads the block numbers mke2fs lists after
// "Superblock backups stored on blocks:", up to the next blank line. A file
// system too small for backups lists none.
func parseSuperblockBackups(out string) ([]uint64, error) {
	_, list, ok := strings.Cut(out, "Superblock backups stored on blocks:")
	if !ok {
		return nil, nil
	}
	if end := strings.Index(list, "\n\n"); end >= 0 {
		list = list[:end]
	}
	var blocks []uint64
	for _, f := range strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r' }) {
		n, err := strconv.ParseUint(f, 10, 64)
		if err != nil || n > (1<<63)/ext4Block {
			return nil, fmt.Errorf("superblock backup %q is not a block number", f)
		}
		if len(blocks) == maxBackups {
			return nil, fmt.Errorf("more than %d superblock backups", maxBackups)
		}
		blocks = append(blocks, n)
	}
	return blocks, nil
}

// writeZeroBlocks writes zeroed ext4 blocks with O_DIRECT, so each reaches
// the device as one whole-sector write and the page cache never reads the
// sector first.
func writeZeroBlocks(dev string, blocks []uint64) error {
	f, err := os.OpenFile(dev, os.O_WRONLY|unix.O_DIRECT, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", dev, err)
	}
	defer f.Close()
	// O_DIRECT wants an aligned buffer; an anonymous mapping is page aligned.
	buf, err := unix.Mmap(-1, 0, ext4Block, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return fmt.Errorf("zero block buffer: %w", err)
	}
	defer unix.Munmap(buf)
	for _, b := range blocks {
		if _, err := f.WriteAt(buf, int64(b)*ext4Block); err != nil {
			return fmt.Errorf("write block %d of %s: %w", b, dev, err)
		}
	}
	return f.Sync()
}
