package storage

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/agent/internal/metrics"
	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
)

// TestLayerIncidentsInMetrics feeds a watch the kernel's events for two
// layers (messages in the kernel's format, as TestVerityWatchCorruptionEvent)
// and checks that GetMetrics' text, full and aggregate, counts one
// corruption per layer and one removed device, and that the records still
// reach the log.
func TestLayerIncidentsInMetrics(t *testing.T) {
	recs := make(testenv.LogRecords, 16)
	var inc LayerIncidents
	w := &verityWatch{log: slog.New(slog.NewJSONHandler(recs, nil)), incidents: &inc, byDev: map[uint64]*verityDevice{}, under: map[uint64]*verityDevice{}}
	a := watchedLayer(unix.Mkdev(254, 3), unix.Mkdev(254, 49))
	b := watchedLayer(unix.Mkdev(254, 4), unix.Mkdev(254, 50))
	w.add(a)
	w.add(b)
	met, err := metrics.New(metrics.Options{Proc: t.TempDir(), CgroupRoot: t.TempDir(), Layers: &inc})
	if err != nil {
		t.Fatal(err)
	}
	gather := func(want string) {
		t.Helper()
		for name, g := range map[string]func(context.Context) (string, error){"full": met.Gather, "aggregate": met.GatherAggregate} {
			text, err := g(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, line := range strings.Split(want, "\n") {
				if !strings.Contains(text, "\n"+line+"\n") {
					t.Errorf("%s metrics lack %q:\n%s", name, line, text)
				}
			}
		}
	}
	gather("cocoon_agent_dm_verity_corruptions_total 0\ncocoon_agent_layer_devices_removed_total 0")

	remove := []byte("remove@/devices/virtual/block/dm-50\x00ACTION=remove\x00MAJOR=254\x00MINOR=50\x00")
	for _, msg := range [][]byte{verityErrMsg(3, "0,4"), verityErrMsg(3, "0,5"), verityErrMsg(4, "1,7"), remove, remove} {
		ev, err := parseUevent(msg)
		if err != nil {
			t.Fatal(err)
		}
		w.handle(ev)
	}
	if c, r := inc.VerityCorruptions(), inc.LayerDevicesRemoved(); c != 2 || r != 1 {
		t.Fatalf("counted %d corruptions and %d removed devices, want 2 and 1", c, r)
	}
	gather("cocoon_agent_dm_verity_corruptions_total 2\ncocoon_agent_layer_devices_removed_total 1")
	if len(recs) != 3 {
		t.Fatalf("%d records logged, want 3", len(recs))
	}
	for range 3 {
		if r := <-recs; r["root_hash"] == nil || r["error"] == nil {
			t.Fatalf("incident record without its layer: %v", r)
		}
	}
}
