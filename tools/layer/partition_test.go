package layer

import (
	"bytes"
	"slices"
	"testing"

	"github.com/cocoon-tee/cocoon/agent/storage/erofs"
)

// TestStorageOptionsTopIsPartitionOne: the options printed for an image's
// layers (BuildImage's order, lowest first) number the partitions as
// runtime-rs lays them out and Kata's agent stacks them: partition 1 is
// the top layer. Stacked by partition number, lowest on top (as
// agent/storage/erofs_group.go does), the layers come out in the image's
// order reversed: top first.
func TestStorageOptionsTopIsPartitionOne(t *testing.T) {
	var res []*Result
	for i := byte(1); i <= 3; i++ {
		res = append(res, &Result{Verity: &Verity{RootHash: bytes.Repeat([]byte{i}, 32), HashOffset: 4096 * uint64(i), DataBlocks: uint64(i)}})
	}
	opts := StorageOptions(res)
	if len(opts) != len(res) {
		t.Fatalf("%d option lists for %d layers", len(opts), len(res))
	}
	byPartition := map[int]string{}
	for i, o := range opts {
		lo, err := erofs.ParseOptions(o)
		if err != nil {
			t.Fatalf("layer %d: %v", i, err)
		}
		if lo.Verity.RootHash != res[i].Verity.RootHashHex() {
			t.Fatalf("layer %d: options carry root hash %s, want %s", i, lo.Verity.RootHash, res[i].Verity.RootHashHex())
		}
		byPartition[lo.Partition] = lo.Verity.RootHash
	}
	var stacked []string
	for p := 1; p <= len(res); p++ {
		h, ok := byPartition[p]
		if !ok {
			t.Fatalf("no layer at partition %d: %v", p, byPartition)
		}
		stacked = append(stacked, h)
	}
	var topFirst []string
	for _, r := range slices.Backward(res) {
		topFirst = append(topFirst, r.Verity.RootHashHex())
	}
	if !slices.Equal(stacked, topFirst) {
		t.Fatalf("stacked by partition (lowest on top): %v, want the image top first: %v", stacked, topFirst)
	}
	if p := Partition(0, 3); p != 3 {
		t.Fatalf("the lowest of 3 layers is partition %d, want 3", p)
	}
}
