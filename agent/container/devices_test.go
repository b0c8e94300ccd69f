package container

import (
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/proto"

	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// deviceSpec is what containerd sends for a pod with one raw block volume
// and one VFIO group: linux.devices with the host's numbers and a
// resources rule allowing each (containerd internal/cri/opts/spec_linux.go
// WithDevices), next to the default deny-all and wildcard rules.
func deviceSpec() *agentpb.Spec {
	return &agentpb.Spec{Linux: &agentpb.Linux{
		Devices: []*agentpb.LinuxDevice{
			{Path: "/dev/xda", Type: "b", Major: 253, Minor: 4},
			{Path: "/dev/vfio/45", Type: "c", Major: 511, Minor: 3},
			{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229},
		},
		Resources: &agentpb.LinuxResources{Devices: []*agentpb.LinuxDeviceCgroup{
			{Allow: false, Access: "rwm", Major: -1, Minor: -1},
			{Allow: true, Type: "b", Major: 253, Minor: 4, Access: "rw"},
			{Allow: true, Type: "c", Major: 511, Minor: 3, Access: "rwm"},
			{Allow: true, Type: "c", Major: 10, Minor: 229, Access: "rwm"},
			{Allow: true, Type: "c", Major: 136, Minor: -1, Access: "rwm"},
		}},
	}}
}

func TestRewriteDevices(t *testing.T) {
	blk := GuestDevice{ContainerPath: "/dev/xda", Type: "b", Major: 252, Minor: 16}
	vfio := GuestDevice{ContainerPath: "/dev/vfio/45", Type: "c", Major: 243, Minor: 1, Path: "/dev/vfio/7"}
	for _, tc := range []struct {
		name        string
		devs        []GuestDevice
		wantDevices []*agentpb.LinuxDevice
		wantRules   []*agentpb.LinuxDeviceCgroup
		wantErr     string
	}{
		{name: "none", wantDevices: deviceSpec().Linux.Devices, wantRules: deviceSpec().Linux.Resources.Devices},
		{
			name: "block and vfio",
			devs: []GuestDevice{blk, vfio},
			wantDevices: []*agentpb.LinuxDevice{
				{Path: "/dev/xda", Type: "b", Major: 252, Minor: 16},
				{Path: "/dev/vfio/7", Type: "c", Major: 243, Minor: 1},
				{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229},
			},
			wantRules: []*agentpb.LinuxDeviceCgroup{
				{Allow: false, Access: "rwm", Major: -1, Minor: -1},
				{Allow: true, Type: "b", Major: 252, Minor: 16, Access: "rw"},
				{Allow: true, Type: "c", Major: 243, Minor: 1, Access: "rwm"},
				{Allow: true, Type: "c", Major: 10, Minor: 229, Access: "rwm"},
				{Allow: true, Type: "c", Major: 136, Minor: -1, Access: "rwm"},
				{Allow: true, Type: "b", Major: 252, Minor: 16, Access: "rwm"},
				{Allow: true, Type: "c", Major: 243, Minor: 1, Access: "rwm"},
			},
		},
		{
			// The added rule for the guest's 10:229 must not be taken for
			// the host's fuse rule, nor the fuse rule moved.
			name: "guest numbers equal another host device's",
			devs: []GuestDevice{{ContainerPath: "/dev/xda", Type: "b", Major: 10, Minor: 229}},
			wantDevices: []*agentpb.LinuxDevice{
				{Path: "/dev/xda", Type: "b", Major: 10, Minor: 229},
				{Path: "/dev/vfio/45", Type: "c", Major: 511, Minor: 3},
				{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229},
			},
			wantRules: []*agentpb.LinuxDeviceCgroup{
				{Allow: false, Access: "rwm", Major: -1, Minor: -1},
				{Allow: true, Type: "b", Major: 10, Minor: 229, Access: "rw"},
				{Allow: true, Type: "c", Major: 511, Minor: 3, Access: "rwm"},
				{Allow: true, Type: "c", Major: 10, Minor: 229, Access: "rwm"},
				{Allow: true, Type: "c", Major: 136, Minor: -1, Access: "rwm"},
				{Allow: true, Type: "b", Major: 10, Minor: 229, Access: "rwm"},
			},
		},
		{name: "not in the spec", devs: []GuestDevice{{ContainerPath: "/dev/xdz", Type: "b", Major: 1, Minor: 2}}, wantErr: "missing from the OCI spec's linux.devices: /dev/xdz"},
		{name: "two for one path", devs: []GuestDevice{blk, blk}, wantErr: "conflicting device updates for /dev/xda"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := deviceSpec()
			err := RewriteDevices(s, tc.devs)
			if tc.wantErr != "" {
				if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(&agentpb.Linux{Devices: s.Linux.Devices}, &agentpb.Linux{Devices: tc.wantDevices}) {
				t.Errorf("devices %v\nwant %v", s.Linux.Devices, tc.wantDevices)
			}
			if !proto.Equal(&agentpb.LinuxResources{Devices: s.Linux.Resources.Devices}, &agentpb.LinuxResources{Devices: tc.wantRules}) {
				t.Errorf("rules %v\nwant %v", s.Linux.Resources.Devices, tc.wantRules)
			}
		})
	}
}

func TestRewriteDevicesEdges(t *testing.T) {
	dev := []GuestDevice{{ContainerPath: "/dev/xda", Type: "b", Major: 252, Minor: 0}}
	if err := RewriteDevices(&agentpb.Spec{}, dev); !errdefs.IsInvalidArgument(err) {
		t.Errorf("no linux: %v", err)
	}
	// Two spec entries with the same host numbers under different paths.
	s := &agentpb.Spec{Linux: &agentpb.Linux{Devices: []*agentpb.LinuxDevice{
		{Path: "/dev/xda", Type: "b", Major: 8, Minor: 0}, {Path: "/dev/xdb", Type: "b", Major: 8, Minor: 0},
	}}}
	err := RewriteDevices(s, append(dev, GuestDevice{ContainerPath: "/dev/xdb", Type: "b", Major: 252, Minor: 1}))
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "conflicting resource updates") {
		t.Errorf("same host device twice: %v", err)
	}
	// A spec without resources gets the allow rule (libcontainer then
	// builds its device rules from it and linux.devices).
	s = &agentpb.Spec{Linux: &agentpb.Linux{Devices: []*agentpb.LinuxDevice{{Path: "/dev/xda", Type: "b", Major: 8, Minor: 0}}}}
	if err := RewriteDevices(s, dev); err != nil || len(s.Linux.Resources.GetDevices()) != 1 || s.Linux.Resources.Devices[0].Major != 252 {
		t.Errorf("no resources: %v %v", s.Linux.Resources, err)
	}
}
