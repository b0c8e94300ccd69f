package rpc_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/runc/libcontainer/seccomp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cocoon-tee/cocoon/protocols/agentpb"
	"github.com/cocoon-tee/cocoon/protocols/typespb"
)

func wantCode(t *testing.T, what string, err error, code codes.Code, text string) {
	t.Helper()
	st, _ := status.FromError(err)
	if err == nil || st.Code() != code || !strings.Contains(st.Message(), text) {
		t.Errorf("%s: got %v, want %v containing %q", what, err, code, text)
	}
}

// TestSystemRPCs drives the guest-wide rpcs through the real agent over
// ttrpc. Only read-only or confined calls run against this machine; the
// calls that change it (clock, swap, hot-plug, interfaces) are exercised
// here with input the agent must refuse, and for real in the VM test.
func TestSystemRPCs(t *testing.T) {
	a := startAgent(t, "")
	ctx := context.Background()
	shared := filepath.Join(a.run, "shared", "containers")

	// CopyFile: two chunks, then the file is there.
	p := filepath.Join(shared, "c1", "hostname")
	for _, c := range []struct {
		off  int64
		data string
	}{{0, "pod-"}, {4, "one\n"}} {
		if _, err := a.CopyFile(ctx, &agentpb.CopyFileRequest{Path: p, FileSize: 8, FileMode: 0o644, DirMode: 0o755, Offset: c.off, Data: []byte(c.data), Uid: -1, Gid: -1}); err != nil {
			t.Fatal(err)
		}
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != "pod-one\n" {
		t.Fatalf("copied file: %q %v", b, err)
	}
	_, err := a.CopyFile(ctx, &agentpb.CopyFileRequest{Path: filepath.Join(a.run, "escape"), FileSize: 1, Data: []byte("x")})
	wantCode(t, "CopyFile outside", err, codes.PermissionDenied, "outside")
	_, err = a.CopyFile(ctx, &agentpb.CopyFileRequest{Path: p, FileSize: 1 << 40})
	wantCode(t, "CopyFile huge", err, codes.InvalidArgument, "file_size")

	d, err := a.GetGuestDetails(ctx, &agentpb.GuestDetailsRequest{MemBlockSize: true, MemHotplugProbe: true})
	if err != nil {
		t.Fatal(err)
	}
	ad := d.GetAgentDetails()
	if ad.GetSupportsSeccomp() != seccomp.Enabled || ad.GetVersion() == "" || len(ad.GetStorageHandlers()) == 0 {
		t.Fatalf("guest details: %v", d)
	}

	m, err := a.GetMetrics(ctx, &agentpb.GetMetricsRequest{})
	if err != nil || !strings.Contains(m.GetMetrics(), "kata_guest_meminfo{item=\"mem_total\"}") || !strings.Contains(m.GetMetrics(), "kata_agent_scrape_count 1") {
		t.Fatalf("metrics: %v\n%.400s", err, m.GetMetrics())
	}

	is, err := a.ListInterfaces(ctx, &agentpb.ListInterfacesRequest{})
	if err != nil || len(is.GetInterfaces()) == 0 {
		t.Fatalf("interfaces: %v %v", is, err)
	}
	if _, err := a.ListRoutes(ctx, &agentpb.ListRoutesRequest{}); err != nil {
		t.Fatal(err)
	}
	_, err = a.UpdateInterface(ctx, &agentpb.UpdateInterfaceRequest{Interface: &typespb.Interface{HwAddr: "02:00:00:00:00:99", Name: "cocoon-none"}})
	wantCode(t, "UpdateInterface unknown", err, codes.NotFound, "Link not found")
	_, err = a.UpdateInterface(ctx, &agentpb.UpdateInterfaceRequest{})
	wantCode(t, "UpdateInterface nil", err, codes.InvalidArgument, "empty update interface request")
	_, err = a.UpdateRoutes(ctx, &agentpb.UpdateRoutesRequest{})
	wantCode(t, "UpdateRoutes nil", err, codes.InvalidArgument, "empty update routes request")
	_, err = a.UpdateRoutes(ctx, &agentpb.UpdateRoutesRequest{Routes: &agentpb.Routes{Routes: []*typespb.Route{{Dest: "10.0.0.0/40", Device: "lo"}}}})
	wantCode(t, "UpdateRoutes bad cidr", err, codes.InvalidArgument, "10.0.0.0/40")
	_, err = a.AddARPNeighbors(ctx, &agentpb.AddARPNeighborsRequest{})
	wantCode(t, "AddARPNeighbors nil", err, codes.InvalidArgument, "empty")

	_, err = a.SetGuestDateTime(ctx, &agentpb.SetGuestDateTimeRequest{Sec: 1, Usec: 2_000_000})
	wantCode(t, "SetGuestDateTime", err, codes.InvalidArgument, "invalid time")
	_, err = a.ReseedRandomDev(ctx, &agentpb.ReseedRandomDevRequest{})
	wantCode(t, "ReseedRandomDev", err, codes.InvalidArgument, "entropy")
	_, err = a.AddSwapPath(ctx, &agentpb.AddSwapPathRequest{Path: "swap"})
	wantCode(t, "AddSwapPath", err, codes.InvalidArgument, "absolute")
	_, err = a.AddSwap(ctx, &agentpb.AddSwapRequest{PCIPath: []uint32{99}})
	wantCode(t, "AddSwap", err, codes.InvalidArgument, "slot")
	_, err = a.OnlineCPUMem(ctx, &agentpb.OnlineCPUMemRequest{NbCpus: 1 << 20})
	wantCode(t, "OnlineCPUMem", err, codes.InvalidArgument, "nb_cpus")
	// Kata 4.1 src/agent/src/rpc.rs lines 1894-1945 (mem_agent_memcg_set,
	// mem_agent_compact_set): with no mem-agent (its default, main.rs line
	// 441) both answer ttrpc INTERNAL "mem-agent is disabled".
	_, err = a.MemAgentMemcgSet(ctx, &agentpb.MemAgentMemcgConfig{})
	wantCode(t, "MemAgentMemcgSet", err, codes.Internal, "mem-agent is disabled")
	_, err = a.MemAgentCompactSet(ctx, &agentpb.MemAgentCompactConfig{})
	wantCode(t, "MemAgentCompactSet", err, codes.Internal, "mem-agent is disabled")
	_, err = a.UpdateEphemeralMounts(ctx, &agentpb.UpdateEphemeralMountsRequest{Storages: []*agentpb.Storage{{Driver: "ephemeral", MountPoint: "/etc"}}})
	wantCode(t, "UpdateEphemeralMounts", err, codes.PermissionDenied, "outside")
	if _, err := a.RemoveStaleVirtiofsShareMounts(ctx, &agentpb.RemoveStaleVirtiofsShareMountsRequest{}); err != nil {
		t.Fatal(err)
	}

	vs, err := a.GetVolumeStats(ctx, &agentpb.VolumeStatsRequest{VolumeGuestPath: shared})
	if err != nil || len(vs.GetUsage()) != 2 {
		t.Fatalf("volume stats: %v %v", vs, err)
	}
	_, err = a.GetVolumeStats(ctx, &agentpb.VolumeStatsRequest{VolumeGuestPath: filepath.Join(shared, "none")})
	wantCode(t, "GetVolumeStats missing", err, codes.NotFound, "none")
	_, err = a.ResizeVolume(ctx, &agentpb.ResizeVolumeRequest{VolumeGuestPath: shared, Size: 1})
	wantCode(t, "ResizeVolume not a mount", err, codes.NotFound, "not a mount point")

	// SetIPTables with rules the tool rejects, in the agent's namespace:
	// nothing is loaded.
	_, err = a.SetIPTables(ctx, &agentpb.SetIPTablesRequest{Data: []byte("*filter\n-A COCOON-NOSUCH -j DROP\nCOMMIT\n")})
	wantCode(t, "SetIPTables bad", err, codes.InvalidArgument, "iptables-restore failed")
	if _, err := a.GetIPTables(ctx, &agentpb.GetIPTablesRequest{}); err != nil {
		t.Fatal(err)
	}
}
