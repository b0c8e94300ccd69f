package daemon

import "testing"

func TestProcStartTicks(t *testing.T) {
	// comm may hold spaces and parentheses; the fields after the last ")"
	// are fixed.
	stat := "1 (cocoon) agent)) S 0 1 1 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 4242 1000 10 18446744073709551615"
	if got, err := procStartTicks([]byte(stat)); err != nil || got != 4242 {
		t.Errorf("got %d, %v; want 4242", got, err)
	}
	for _, bad := range []string{"", "1 (x", "1 (x) S 0", "1 (x) S 0 1 1 0 -1 4 1 0 0 0 0 0 0 0 20 0 1 0 -5 1"} {
		if _, err := procStartTicks([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzProcStartTicks(f *testing.F) {
	f.Add([]byte("1 (init) S 0 1 1 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 7 1000"))
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = procStartTicks(b) })
}
