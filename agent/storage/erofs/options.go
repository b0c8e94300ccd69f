package erofs

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
)

// Storage options Kata 4.1's runtime-rs puts on each EROFS lower layer of an
// erofs.multi-layer rootfs (runtime-rs erofs_rootfs.rs, kata-types
// gpt_disk.rs generate_dmverity_options; the agent reads them in
// multi_layer_erofs.rs parse_dmverity_options).
const (
	OptOverlayLower   = "X-kata.overlay-lower"
	OptOverlayUpper   = "X-kata.overlay-upper"
	OptMultiLayer     = "X-kata.multi-layer=true"
	OptGPTPartitioned = "X-kata.gpt-partitioned=true"
	OptPartition      = "X-kata.partition-number="
	OptVerityEnabled  = "X-kata.dmverity-enabled=true"
	optVerityPrefix   = "X-kata.dmverity."
	optKataPrefix     = "X-kata."
)

// maxOptions bounds the option list a host can make us walk.
const maxOptions = 64

// VerityParams are a layer's dm-verity parameters as the host states them.
// Only RootHash is trusted, and only after the policy allowed it.
type VerityParams struct {
	RootHash     string // lowercase hex, 64 digits
	HashOffset   uint64 // bytes; the superblock (or tree) starts here
	DataBlocks   uint64 // HashOffset / BlockSize
	BlockSize    uint64
	HashSize     uint64
	Algorithm    string
	Salt         []byte // nil for no salt ("-" or empty)
	HashType     uint32
	NoSuperblock bool
}

// HashStartBlock is the first hash block of the tree, in hash blocks, past
// the superblock when there is one: the dm-verity table's hash_start.
func (p *VerityParams) HashStartBlock() uint64 {
	start := p.HashOffset / p.HashSize
	if !p.NoSuperblock {
		start += (SuperblockSize + p.HashSize - 1) / p.HashSize
	}
	return start
}

// LayerOptions is one multi-layer EROFS storage's options, parsed.
type LayerOptions struct {
	Lower, Upper, MultiLayer, GPTPartitioned bool
	Partition                                int // 0 when absent
	// Verity is nil when the host sent no X-kata.dmverity-enabled=true.
	Verity *VerityParams
	// Mkdirs are the X-kata.mkdir.path directives, in order (mkdir.go).
	Mkdirs []MkdirDirective
	// MountOptions are the options that are not X-kata markers.
	MountOptions []string
}

// ParseOptions parses a storage's option list strictly: unknown or repeated
// X-kata.dmverity.* options, bad numbers and inconsistent sizes are
// INVALID_ARGUMENT, since the host must not get to pick which of two values
// the guest believes. Defaults are Kata's: sha256, 4096-byte blocks, hash
// type 1, a superblock. Errors name the option.
func ParseOptions(options []string) (*LayerOptions, error) {
	if len(options) > maxOptions {
		return nil, invalid("%d storage options: at most %d", len(options), maxOptions)
	}
	lo := &LayerOptions{}
	verity := map[string]string{}
	enabled := false
	for _, o := range options {
		switch {
		case o == OptOverlayLower:
			lo.Lower = true
		case o == OptOverlayUpper:
			lo.Upper = true
		case o == OptMultiLayer:
			lo.MultiLayer = true
		case o == OptGPTPartitioned:
			lo.GPTPartitioned = true
		case o == OptVerityEnabled:
			enabled = true
		case strings.HasPrefix(o, OptPartition):
			if lo.Partition != 0 {
				return nil, invalid("option %q given twice", OptPartition)
			}
			n, err := strconv.ParseUint(o[len(OptPartition):], 10, 8)
			if err != nil || n == 0 || n > 128 {
				return nil, invalid("option %q: partition number 1..128", o)
			}
			lo.Partition = int(n)
		case strings.HasPrefix(o, optVerityPrefix):
			k, v, ok := strings.Cut(o[len(optVerityPrefix):], "=")
			if !ok {
				return nil, invalid("option %q: no value", o)
			}
			if _, dup := verity[k]; dup {
				return nil, invalid("option %s%s given twice", optVerityPrefix, k)
			}
			verity[k] = v
		case strings.HasPrefix(o, "X-kata.dmverity"):
			return nil, invalid("unknown dm-verity option %q", o)
		case strings.HasPrefix(o, OptMkdirPath):
			if len(lo.Mkdirs) == MaxMkdirs {
				return nil, invalid("more than %d %s directives", MaxMkdirs, OptMkdirPath)
			}
			d, err := ParseMkdir(o[len(OptMkdirPath):])
			if err != nil {
				return nil, err
			}
			lo.Mkdirs = append(lo.Mkdirs, d)
		case strings.HasPrefix(o, optMkdir):
			return nil, invalid("unknown mkdir option %q (only %s<path>)", o, OptMkdirPath)
		case strings.HasPrefix(o, optKataPrefix):
			// Other X-kata markers carry nothing the guest acts on.
		default:
			lo.MountOptions = append(lo.MountOptions, o)
		}
	}
	if lo.Lower && lo.Upper {
		return nil, invalid("storage is both %s and %s", OptOverlayLower, OptOverlayUpper)
	}
	if !enabled {
		if len(verity) > 0 {
			return nil, invalid("dm-verity options without %s", OptVerityEnabled)
		}
		return lo, nil
	}
	p, err := parseVerity(verity)
	if err != nil {
		return nil, err
	}
	lo.Verity = p
	return lo, nil
}

func parseVerity(kv map[string]string) (*VerityParams, error) {
	p := &VerityParams{BlockSize: VerityBlockSize, HashSize: VerityBlockSize,
		Algorithm: VerityAlgorithm, HashType: VerityHashType}
	var err error
	for k, v := range kv {
		opt := optVerityPrefix + k
		switch k {
		case "roothash":
			p.RootHash = v
		case "hashoffset":
			p.HashOffset, err = strconv.ParseUint(v, 10, 64)
		case "blocksize":
			p.BlockSize, err = strconv.ParseUint(v, 10, 64)
		case "hashsize":
			p.HashSize, err = strconv.ParseUint(v, 10, 64)
		case "algorithm":
			p.Algorithm = v
		case "salt":
			if v != "" && v != "-" {
				p.Salt, err = hex.DecodeString(v)
			}
		case "hashtype":
			var n uint64
			n, err = strconv.ParseUint(v, 10, 32)
			p.HashType = uint32(n)
		case "no-superblock":
			p.NoSuperblock, err = strconv.ParseBool(v)
		default:
			return nil, invalid("unknown dm-verity option %q", opt)
		}
		if err != nil {
			return nil, invalid("option %s=%q: %v", opt, v, err)
		}
	}
	switch {
	case !isRootHash(p.RootHash):
		return nil, invalid("option %sroothash=%q: want 64 lowercase hex digits (sha256)", optVerityPrefix, p.RootHash)
	case p.Algorithm != VerityAlgorithm:
		return nil, invalid("option %salgorithm=%q: only %s is accepted", optVerityPrefix, p.Algorithm, VerityAlgorithm)
	case p.HashType != 0 && p.HashType != 1:
		return nil, invalid("option %shashtype=%d: 0 or 1", optVerityPrefix, p.HashType)
	case !validBlockSize(p.BlockSize) || !validBlockSize(p.HashSize):
		return nil, invalid("dm-verity block sizes %d/%d: powers of two from 512 to 4096", p.BlockSize, p.HashSize)
	case len(p.Salt) > 256:
		return nil, invalid("option %ssalt: %d bytes, at most 256", optVerityPrefix, len(p.Salt))
	case p.HashOffset == 0:
		return nil, invalid("option %shashoffset is missing or zero", optVerityPrefix)
	case p.HashOffset%p.BlockSize != 0 || p.HashOffset%p.HashSize != 0:
		return nil, invalid("option %shashoffset=%d is not a multiple of the block sizes %d/%d",
			optVerityPrefix, p.HashOffset, p.BlockSize, p.HashSize)
	}
	p.DataBlocks = p.HashOffset / p.BlockSize
	return p, nil
}

func validBlockSize(n uint64) bool { return n >= 512 && n <= 4096 && n&(n-1) == 0 }

func isRootHash(s string) bool {
	if len(s) != 2*32 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func invalid(format string, a ...any) error {
	return fmt.Errorf("erofs layer: "+format+": %w", append(a, errdefs.ErrInvalidArgument)...)
}
