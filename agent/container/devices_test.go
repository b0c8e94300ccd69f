package container

import (
	"reflect"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// deviceSpec is what containerd sends for a pod with one raw block volume
// and one VFIO group: linux.devices with the host's numbers and a
// resources rule allowing each (containerd internal/cri/opts/spec_linux.go
// WithDevices), next to the default deny-all and wildcard rules.
func deviceSpec() *specs.Spec {
	return &specs.Spec{Linux: &specs.Linux{
		Devices: []specs.LinuxDevice{
			{Path: "/dev/xda", Type: "b", Major: 253, Minor: 4},
			{Path: "/dev/vfio/45", Type: "c", Major: 511, Minor: 3},
			{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229},
		},
		Resources: &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{
			{Allow: false, Access: "rwm"},
			{Allow: true, Type: "b", Major: ptr[int64](253), Minor: ptr[int64](4), Access: "rw"},
			{Allow: true, Type: "c", Major: ptr[int64](511), Minor: ptr[int64](3), Access: "rwm"},
			{Allow: true, Type: "c", Major: ptr[int64](10), Minor: ptr[int64](229), Access: "rwm"},
			{Allow: true, Type: "c", Major: ptr[int64](136), Access: "rwm"},
		}},
	}}
}

func TestRewriteDevices(t *testing.T) {
	blk := GuestDevice{ContainerPath: "/dev/xda", Type: "b", Major: 252, Minor: 16}
	vfio := GuestDevice{ContainerPath: "/dev/vfio/45", Type: "c", Major: 243, Minor: 1, Path: "/dev/vfio/7"}
	for _, tc := range []struct {
		name        string
		devs        []GuestDevice
		wantDevices []specs.LinuxDevice
		wantRules   []specs.LinuxDeviceCgroup
		wantErr     string
	}{
		{name: "none", wantDevices: deviceSpec().Linux.Devices, wantRules: deviceSpec().Linux.Resources.Devices},
		{
			name: "block and vfio",
			devs: []GuestDevice{blk, vfio},
			wantDevices: []specs.LinuxDevice{
				{Path: "/dev/xda", Type: "b", Major: 252, Minor: 16},
				{Path: "/dev/vfio/7", Type: "c", Major: 243, Minor: 1},
				{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229},
			},
			wantRules: []specs.LinuxDeviceCgroup{
				{Allow: false, Access: "rwm"},
				{Allow: true, Type: "b", Major: ptr[int64](252), Minor: ptr[int64](16), Access: "rw"},
				{Allow: true, Type: "c", Major: ptr[int64](243), Minor: ptr[int64](1), Access: "rwm"},
				{Allow: true, Type: "c", Major: ptr[int64](10), Minor: ptr[int64](229), Access: "rwm"},
				{Allow: true, Type: "c", Major: ptr[int64](136), Access: "rwm"},
				{Allow: true, Type: "b", Major: ptr[int64](252), Minor: ptr[int64](16), Access: "rwm"},
				{Allow: true, Type: "c", Major: ptr[int64](243), Minor: ptr[int64](1), Access: "rwm"},
			},
		},
		{
			// The added rule for the guest's 10:229 must not be taken for
			// the host's fuse rule, nor the fuse rule moved.
			name: "guest numbers equal another host device's",
			devs: []GuestDevice{{ContainerPath: "/dev/xda", Type: "b", Major: 10, Minor: 229}},
			wantDevices: []specs.LinuxDevice{
				{Path: "/dev/xda", Type: "b", Major: 10, Minor: 229},
				{Path: "/dev/vfio/45", Type: "c", Major: 511, Minor: 3},
				{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229},
			},
			wantRules: []specs.LinuxDeviceCgroup{
				{Allow: false, Access: "rwm"},
				{Allow: true, Type: "b", Major: ptr[int64](10), Minor: ptr[int64](229), Access: "rw"},
				{Allow: true, Type: "c", Major: ptr[int64](511), Minor: ptr[int64](3), Access: "rwm"},
				{Allow: true, Type: "c", Major: ptr[int64](10), Minor: ptr[int64](229), Access: "rwm"},
				{Allow: true, Type: "c", Major: ptr[int64](136), Access: "rwm"},
				{Allow: true, Type: "b", Major: ptr[int64](10), Minor: ptr[int64](229), Access: "rwm"},
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
			if !reflect.DeepEqual(s.Linux.Devices, tc.wantDevices) {
				t.Errorf("devices %v\nwant %v", s.Linux.Devices, tc.wantDevices)
			}
			if !reflect.DeepEqual(s.Linux.Resources.Devices, tc.wantRules) {
				t.Errorf("rules %v\nwant %v", s.Linux.Resources.Devices, tc.wantRules)
			}
		})
	}
}

func TestRewriteDevicesEdges(t *testing.T) {
	dev := []GuestDevice{{ContainerPath: "/dev/xda", Type: "b", Major: 252, Minor: 0}}
	if err := RewriteDevices(&specs.Spec{}, dev); !errdefs.IsInvalidArgument(err) {
		t.Errorf("no linux: %v", err)
	}
	// Two spec entries with the same host numbers under different paths.
	s := &specs.Spec{Linux: &specs.Linux{Devices: []specs.LinuxDevice{
		{Path: "/dev/xda", Type: "b", Major: 8, Minor: 0}, {Path: "/dev/xdb", Type: "b", Major: 8, Minor: 0},
	}}}
	err := RewriteDevices(s, append(dev, GuestDevice{ContainerPath: "/dev/xdb", Type: "b", Major: 252, Minor: 1}))
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "conflicting resource updates") {
		t.Errorf("same host device twice: %v", err)
	}
	// A spec without resources gets the allow rule (libcontainer then
	// builds its device rules from it and linux.devices).
	s = &specs.Spec{Linux: &specs.Linux{Devices: []specs.LinuxDevice{{Path: "/dev/xda", Type: "b", Major: 8, Minor: 0}}}}
	if err := RewriteDevices(s, dev); err != nil || s.Linux.Resources == nil || len(s.Linux.Resources.Devices) != 1 || *s.Linux.Resources.Devices[0].Major != 252 {
		t.Errorf("no resources: %v %v", s.Linux.Resources, err)
	}
}
