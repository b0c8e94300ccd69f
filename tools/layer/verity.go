package layer

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"

	"github.com/cocoon-tee/cocoon/agent/storage/erofs"
)

// The dm-verity parameters of containerd's EROFS differ (internal/dmverity
// DefaultDmverityOptions), which Kata's runtime-rs assumes when the layer's
// metadata names no salt: sha256, 4 KiB data and hash blocks, format 1, a
// salt of 32 zero bytes, and a v1 superblock at the hash offset.
const (
	VerityBlockSize = erofs.VerityBlockSize
	VerityHashType  = erofs.VerityHashType
	VerityAlgorithm = erofs.VerityAlgorithm
	verityMagic     = "verity\x00\x00"
	superblockSize  = erofs.SuperblockSize
)

// DefaultSalt is containerd's dm-verity salt: 32 zero bytes.
var DefaultSalt = make([]byte, 32)

// Verity describes a dm-verity hash tree appended to an image file.
type Verity struct {
	RootHash   []byte
	HashOffset uint64 // where the superblock starts: the data area's size
	DataBlocks uint64
	Salt       []byte
	UUID       [16]byte
}

// RootHashHex is the root hash as the storage options and policies carry it.
func (v *Verity) RootHashHex() string { return hex.EncodeToString(v.RootHash) }

// AppendVerity pads the file at path to a whole number of blocks and appends
// a v1 superblock and the hash tree, as `veritysetup format --hash-offset`
// does on a single file (data and hash device the same) and as containerd's
// differ does to layer.erofs. The superblock's UUID is not covered by the
// root hash; containerd picks a random one, we take uuid so that two builds
// are byte-identical.
func AppendVerity(path string, salt []byte, uuid [16]byte) (*Verity, error) {
	if len(salt) > 256 {
		return nil, fmt.Errorf("dm-verity salt of %d bytes: at most 256", len(salt))
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() == 0 {
		return nil, fmt.Errorf("%s: empty image", path)
	}
	blocks := (uint64(st.Size()) + VerityBlockSize - 1) / VerityBlockSize
	v := &Verity{HashOffset: blocks * VerityBlockSize, DataBlocks: blocks, Salt: salt, UUID: uuid}
	if err := f.Truncate(int64(v.HashOffset)); err != nil {
		return nil, err
	}
	levels, root, err := hashTree(f, blocks, salt)
	if err != nil {
		return nil, err
	}
	v.RootHash = root
	sb := v.superblock()
	out := make([]byte, 0, VerityBlockSize)
	out = append(out, sb...)
	out = append(out, make([]byte, VerityBlockSize-len(sb))...)
	// dm-verity reads the level nearest the root first: top level first.
	for i := len(levels) - 1; i >= 0; i-- {
		out = append(out, levels[i]...)
	}
	if _, err := f.WriteAt(out, int64(v.HashOffset)); err != nil {
		return nil, err
	}
	return v, f.Sync()
}

// hashTree computes every level of the tree over the first blocks blocks of
// r and the root hash. Level 0 hashes the data blocks; each next level
// hashes the blocks of the one below, until one block remains.
func hashTree(r io.ReaderAt, blocks uint64, salt []byte) ([][]byte, []byte, error) {
	h := sha256.New()
	buf := make([]byte, VerityBlockSize)
	var levels [][]byte
	var cur bytes.Buffer
	for i := uint64(0); i < blocks; i++ {
		if _, err := r.ReadAt(buf, int64(i*VerityBlockSize)); err != nil {
			return nil, nil, fmt.Errorf("read block %d: %w", i, err)
		}
		cur.Write(blockHash(h, salt, buf))
	}
	if blocks == 1 {
		// No hash blocks at all: the root is the one data block's hash.
		return nil, cur.Bytes(), nil
	}
	for {
		level := padBlocks(cur.Bytes())
		levels = append(levels, level)
		cur.Reset()
		for off := 0; off < len(level); off += VerityBlockSize {
			cur.Write(blockHash(h, salt, level[off:off+VerityBlockSize]))
		}
		if len(level) == VerityBlockSize {
			return levels, cur.Bytes(), nil
		}
	}
}

// blockHash is format 1's hash of one block: the salt first, then the block.
func blockHash(h hash.Hash, salt, block []byte) []byte {
	h.Reset()
	h.Write(salt)
	h.Write(block)
	return h.Sum(nil)
}

// padBlocks zero-fills digests to whole hash blocks (sha256 digests are a
// power of two long, so format 1 needs no per-digest padding).
func padBlocks(b []byte) []byte {
	n := (len(b) + VerityBlockSize - 1) / VerityBlockSize * VerityBlockSize
	out := make([]byte, n)
	copy(out, b)
	return out
}

// superblock is the 512-byte v1 superblock (cryptsetup's struct verity_sb,
// little-endian), the layout Kata's gpt_disk.rs reads the salt from.
func (v *Verity) superblock() []byte {
	sb := make([]byte, superblockSize)
	copy(sb[0:8], verityMagic)
	binary.LittleEndian.PutUint32(sb[8:], 1) // version
	binary.LittleEndian.PutUint32(sb[12:], VerityHashType)
	copy(sb[16:32], v.UUID[:])
	copy(sb[32:64], VerityAlgorithm)
	binary.LittleEndian.PutUint32(sb[64:], VerityBlockSize)
	binary.LittleEndian.PutUint32(sb[68:], VerityBlockSize)
	binary.LittleEndian.PutUint64(sb[72:], v.DataBlocks)
	binary.LittleEndian.PutUint16(sb[80:], uint16(len(v.Salt)))
	copy(sb[88:], v.Salt)
	return sb
}
