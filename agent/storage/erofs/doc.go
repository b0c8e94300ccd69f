// Package erofs reads the storage options Kata's runtime-rs sends with a
// host-shared EROFS layer (X-kata.overlay-*, X-kata.partition-number,
// X-kata.dmverity.*) and defines the refusal of a layer whose root hash the
// policy does not pin. The agent's storage driver and cocoonctl's layer
// builder both use it, so the options the builder prints are the ones the
// agent parses.
package erofs

// The dm-verity parameters of containerd's EROFS differ (internal/dmverity
// DefaultDmverityOptions), which Kata's runtime-rs and agent assume when
// the host names none: sha256, 4 KiB data and hash blocks, format 1, and a
// v1 superblock of 512 bytes at the hash offset.
const (
	VerityBlockSize = 4096
	VerityHashType  = 1
	VerityAlgorithm = "sha256"
	SuperblockSize  = 512
)
