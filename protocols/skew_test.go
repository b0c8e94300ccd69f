package protocols_test

// Version skew: a Kata runtime newer than our protos may send fields and
// rpcs we do not know. Kata's agent keeps unknown fields (protobuf) and
// answers unknown rpcs with Unimplemented (ttrpc); these tests hold the
// real agent to the same, over the raw ttrpc client the runtimes use.

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/cocoon-tee/cocoon/agent/daemon"
	"github.com/cocoon-tee/cocoon/internal/testutil/testagent"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// futureFields appends fields no Kata release has used yet, of each wire
// type a newer runtime could add.
func futureFields() []byte {
	var b []byte
	b = protowire.AppendTag(b, 90, protowire.VarintType)
	b = protowire.AppendVarint(b, 7)
	b = protowire.AppendTag(b, 91, protowire.BytesType)
	b = protowire.AppendString(b, "from a newer runtime")
	b = protowire.AppendTag(b, 92, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, 1)
	b = protowire.AppendTag(b, 93, protowire.Fixed32Type)
	return protowire.AppendFixed32(b, 2)
}

func TestDecodeKeepsUnknownFields(t *testing.T) {
	storage := &agentpb.Storage{Driver: "image_guest_pull", Source: "docker.io/library/busybox:latest", MountPoint: "/run/kata-containers/c1/rootfs"}
	storageWire, err := proto.Marshal(storage)
	if err != nil {
		t.Fatal(err)
	}
	// The unknown field sits both at the top and inside a nested message.
	var wire []byte
	wire = protowire.AppendTag(wire, 1, protowire.BytesType)
	wire = protowire.AppendString(wire, "c1")
	wire = protowire.AppendTag(wire, 5, protowire.BytesType)
	wire = protowire.AppendBytes(wire, append(storageWire, futureFields()...))
	wire = append(wire, futureFields()...)
	wire = protowire.AppendTag(wire, 11, protowire.VarintType)
	wire = protowire.AppendVarint(wire, 3)

	var req agentpb.CreateContainerRequest
	if err := proto.Unmarshal(wire, &req); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if req.ContainerId != "c1" || req.StderrPort != 3 || len(req.Storages) != 1 || !proto.Equal(stripUnknown(req.Storages[0]), storage) {
		t.Fatalf("known fields lost: %v", &req)
	}
	if got := req.ProtoReflect().GetUnknown(); string(got) != string(futureFields()) {
		t.Errorf("top-level unknown fields %x, want %x", got, futureFields())
	}
	if got := req.Storages[0].ProtoReflect().GetUnknown(); string(got) != string(futureFields()) {
		t.Errorf("nested unknown fields %x, want %x", got, futureFields())
	}
}

func stripUnknown(m *agentpb.Storage) *agentpb.Storage {
	c := proto.Clone(m).(*agentpb.Storage)
	c.ProtoReflect().SetUnknown(nil)
	return c
}

// withFuture is m with futureFields set as unknown fields, as a newer
// runtime's encoder would send it.
func withFuture[M proto.Message](m M) M {
	m.ProtoReflect().SetUnknown(futureFields())
	return m
}

func TestAgentToleratesNewerRuntime(t *testing.T) {
	c := testagent.Start(t, testagent.Config(t), daemon.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Requests with fields we do not know are served.
	var health agentpb.HealthCheckResponse
	if err := c.TTRPC.Call(ctx, "grpc.Health", "Check", withFuture(&agentpb.CheckRequest{}), &health); err != nil {
		t.Fatalf("Check with unknown fields: %v", err)
	}
	if health.Status != agentpb.HealthCheckResponse_SERVING {
		t.Errorf("Check: %v", health.Status)
	}
	var details agentpb.GuestDetailsResponse
	if err := c.TTRPC.Call(ctx, "grpc.AgentService", "GetGuestDetails", withFuture(&agentpb.GuestDetailsRequest{MemBlockSize: true}), &details); err != nil {
		t.Fatalf("GetGuestDetails with unknown fields: %v", err)
	}
	if details.AgentDetails == nil || details.AgentDetails.Version == "" {
		t.Errorf("GetGuestDetails: %v", &details)
	}

	// An rpc or a service we do not know is Unimplemented, which the Kata
	// runtimes treat as "agent too old" where they can (AddARPNeighbors).
	for _, m := range []struct{ service, method string }{
		{"grpc.AgentService", "SomeRpcFromTheFuture"},
		{"grpc.FutureService", "Check"},
	} {
		err := c.TTRPC.Call(ctx, m.service, m.method, withFuture(&emptypb.Empty{}), &emptypb.Empty{})
		if status.Code(err) != codes.Unimplemented {
			t.Errorf("%s/%s: %v, want Unimplemented", m.service, m.method, err)
		}
	}

	// The connection is still good after the refusals.
	if err := c.TTRPC.Call(ctx, "grpc.Health", "Check", &agentpb.CheckRequest{}, &health); err != nil {
		t.Errorf("Check after unknown rpcs: %v", err)
	}
}
