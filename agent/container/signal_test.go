package container

import (
	"strings"
	"syscall"
	"testing"
)

func TestSignalInMasks(t *testing.T) {
	status := "Name:\tsh\nSigBlk:\t0000000000000000\nSigIgn:\t0000000000000004\nSigCgt:\t0000000000004002\n"
	for sig, want := range map[syscall.Signal]bool{syscall.SIGTERM: true, syscall.SIGINT: true, syscall.SIGQUIT: true, syscall.SIGKILL: false, syscall.SIGHUP: false, 0: false, 65: false} {
		if got := SignalInMasks(status, sig); got != want {
			t.Errorf("%v: %v", sig, got)
		}
	}
	if SignalInMasks("SigCgt:\tzz\n", syscall.SIGTERM) {
		t.Error("garbage mask read as set")
	}
}

func FuzzSignalInMasks(f *testing.F) {
	f.Add("SigCgt:\t0000000000004002\n", 15)
	f.Fuzz(func(t *testing.T, s string, sig int) {
		_ = SignalInMasks(s, syscall.Signal(sig))
	})
}

func TestParseNetDev(t *testing.T) {
	data := `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0
  eth0: 1000 10 1 2 0 0 0 0 2000 20 3 4 0 0 0 0
  bad: x y
`
	got := ParseNetDev([]byte(data))
	if len(got) != 1 || got[0].Name != "eth0" || got[0].RxBytes != 1000 || got[0].RxDropped != 2 || got[0].TxBytes != 2000 || got[0].TxDropped != 4 {
		t.Fatalf("%v", got)
	}
}

func FuzzParseNetDev(f *testing.F) {
	f.Add([]byte("eth0: 1 2 3 4 5 6 7 8 9 10 11 12\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, s := range ParseNetDev(data) {
			if s.Name == "" || strings.Contains(s.Name, ":") {
				t.Fatalf("bad name %q", s.Name)
			}
		}
	})
}
