package erofs

import (
	"errors"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

const testHash = "ea1997fa68592d39cbe85d237d78652fed1cfe7dcb6780dfafa6e0d69ee83658"

// kataLower is what Kata 4.1's runtime-rs sends for a containerd-built
// layer in GPT mode (erofs_rootfs.rs and gpt_disk.rs generate_dmverity_options).
func kataLower(extra ...string) []string {
	return append([]string{
		"X-kata.overlay-lower", "X-kata.multi-layer=true", "X-kata.gpt-partitioned=true",
		"X-kata.partition-number=2", "X-kata.dmverity-enabled=true",
		"X-kata.dmverity.roothash=" + testHash, "X-kata.dmverity.hashoffset=1052672",
		"X-kata.dmverity.no-superblock=false",
		"X-kata.dmverity.salt=0000000000000000000000000000000000000000000000000000000000000000",
	}, extra...)
}

func TestParseOptionsKataLower(t *testing.T) {
	lo, err := ParseOptions(kataLower("ro"))
	if err != nil {
		t.Fatal(err)
	}
	if !lo.Lower || lo.Upper || !lo.MultiLayer || !lo.GPTPartitioned || lo.Partition != 2 {
		t.Fatalf("markers: %+v", lo)
	}
	if len(lo.MountOptions) != 1 || lo.MountOptions[0] != "ro" {
		t.Fatalf("mount options %q", lo.MountOptions)
	}
	v := lo.Verity
	if v == nil || v.RootHash != testHash || v.HashOffset != 1052672 || v.DataBlocks != 257 ||
		v.BlockSize != 4096 || v.HashSize != 4096 || v.Algorithm != "sha256" || v.HashType != 1 ||
		v.NoSuperblock || len(v.Salt) != 32 {
		t.Fatalf("verity %+v", v)
	}
	// The superblock takes one 4 KiB hash block: the tree starts after it.
	if got := v.HashStartBlock(); got != 258 {
		t.Fatalf("hash start block %d, want 258", got)
	}
}

func TestParseOptionsNoVerity(t *testing.T) {
	lo, err := ParseOptions([]string{"X-kata.overlay-upper", "X-kata.multi-layer=true", "rw", "X-kata.mkdir.path={{ mount 0 }}/upper:0755"})
	if err != nil {
		t.Fatal(err)
	}
	if lo.Verity != nil || !lo.Upper || len(lo.MountOptions) != 1 {
		t.Fatalf("%+v", lo)
	}
}

func TestParseOptionsRejects(t *testing.T) {
	replace := func(prefix, with string) []string {
		var out []string
		for _, o := range kataLower() {
			if strings.HasPrefix(o, prefix) {
				if with == "" {
					continue
				}
				o = with
			}
			out = append(out, o)
		}
		return out
	}
	for name, opts := range map[string][]string{
		"two root hashes":      kataLower("X-kata.dmverity.roothash=" + strings.Repeat("1", 64)),
		"uppercase root hash":  replace("X-kata.dmverity.roothash=", "X-kata.dmverity.roothash="+strings.ToUpper(testHash)),
		"short root hash":      replace("X-kata.dmverity.roothash=", "X-kata.dmverity.roothash=abcd"),
		"no root hash":         replace("X-kata.dmverity.roothash=", ""),
		"no hash offset":       replace("X-kata.dmverity.hashoffset=", ""),
		"unaligned offset":     replace("X-kata.dmverity.hashoffset=", "X-kata.dmverity.hashoffset=4097"),
		"negative offset":      replace("X-kata.dmverity.hashoffset=", "X-kata.dmverity.hashoffset=-4096"),
		"sha1":                 kataLower("X-kata.dmverity.algorithm=sha1"),
		"huge block":           kataLower("X-kata.dmverity.blocksize=65536"),
		"odd hash size":        kataLower("X-kata.dmverity.hashsize=3000"),
		"hash type 2":          kataLower("X-kata.dmverity.hashtype=2"),
		"bad salt":             replace("X-kata.dmverity.salt=", "X-kata.dmverity.salt=zz"),
		"unknown verity key":   kataLower("X-kata.dmverity.future=1"),
		"verity without value": kataLower("X-kata.dmverity.roothash"),
		"misspelled enable":    kataLower("X-kata.dmverity-enabled=yes"),
		"verity not enabled":   replace("X-kata.dmverity-enabled=true", ""),
		"partition 0":          replace("X-kata.partition-number=", "X-kata.partition-number=0"),
		"two partitions":       kataLower("X-kata.partition-number=3"),
		"lower and upper":      kataLower("X-kata.overlay-upper"),
		"too many options":     append(kataLower(), make([]string, maxOptions)...),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseOptions(opts)
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("err = %v, want INVALID_ARGUMENT", err)
			}
		})
	}
}

func TestRootHashDenied(t *testing.T) {
	err := error(&RootHashDenied{Layer: "container c1 layer 2", Got: testHash, Allowed: []string{strings.Repeat("b", 64)}})
	if !errors.Is(err, errdefs.ErrPermissionDenied) {
		t.Fatal("not PERMISSION_DENIED")
	}
	for _, want := range []string{"container c1 layer 2", testHash, strings.Repeat("b", 64)} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("%q lacks %q", err, want)
		}
	}
}

func FuzzParseOptions(f *testing.F) {
	f.Add(strings.Join(kataLower("ro"), "\n"))
	f.Add("X-kata.dmverity-enabled=true\nX-kata.dmverity.hashoffset=18446744073709551615")
	f.Add("X-kata.partition-number=300\nX-kata.dmverity.salt=-")
	f.Fuzz(func(t *testing.T, s string) {
		lo, err := ParseOptions(strings.Split(s, "\n"))
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("error not INVALID_ARGUMENT: %v", err)
			}
			return
		}
		if v := lo.Verity; v != nil {
			if !isRootHash(v.RootHash) || v.DataBlocks == 0 || v.HashOffset%v.BlockSize != 0 ||
				v.DataBlocks*v.BlockSize != v.HashOffset || v.HashStartBlock() < v.HashOffset/v.HashSize {
				t.Fatalf("accepted inconsistent params %+v", v)
			}
		}
	})
}
