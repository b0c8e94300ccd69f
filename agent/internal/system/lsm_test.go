package system

import (
	"slices"
	"testing"
)

func TestLSMs(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  LSMs
	}{
		{"none", map[string]string{}, LSMs{}},
		// Ubuntu's kernel with securityfs mounted.
		{"lsm list apparmor", map[string]string{"kernel/security/lsm": "lockdown,capability,landlock,yama,apparmor\n"}, LSMs{AppArmor: true}},
		{"lsm list selinux", map[string]string{"kernel/security/lsm": "capability,selinux"}, LSMs{SELinux: true}},
		{"lsm list without either", map[string]string{"kernel/security/lsm": "capability,landlock,yama"}, LSMs{}},
		// Without securityfs: the module parameter runc reads.
		{"apparmor parameter Y", map[string]string{"module/apparmor/parameters/enabled": "Y\n"}, LSMs{AppArmor: true}},
		{"apparmor parameter N", map[string]string{"module/apparmor/parameters/enabled": "N\n"}, LSMs{}},
		{"selinuxfs", map[string]string{"fs/selinux/enforce": "1"}, LSMs{SELinux: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := New(Options{Sysfs: fakeTree(t, tc.files)}).LSMs(); got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestLSMStrip(t *testing.T) {
	const profile, label, mount = "cri-containerd.apparmor.d", "system_u:system_r:container_t:s0:c1,c2", "system_u:object_r:container_file_t:s0:c1,c2"
	for _, tc := range []struct {
		lsms        LSMs
		wantDropped []string
		wantKept    [3]string
	}{
		{LSMs{}, []string{"apparmorProfile=" + profile, "selinuxLabel=" + label, "mountLabel=" + mount}, [3]string{}},
		{LSMs{AppArmor: true}, []string{"selinuxLabel=" + label, "mountLabel=" + mount}, [3]string{profile, "", ""}},
		{LSMs{SELinux: true}, []string{"apparmorProfile=" + profile}, [3]string{"", label, mount}},
		{LSMs{AppArmor: true, SELinux: true}, nil, [3]string{profile, label, mount}},
	} {
		a, s, m := profile, label, mount
		dropped := tc.lsms.Strip(&a, &s, &m)
		if !slices.Equal(dropped, tc.wantDropped) || [3]string{a, s, m} != tc.wantKept {
			t.Errorf("%+v: dropped %q, left %q", tc.lsms, dropped, [3]string{a, s, m})
		}
	}
	// Empty labels and absent fields are nothing to drop.
	empty := ""
	if d := (LSMs{}).Strip(&empty, nil, nil); d != nil {
		t.Errorf("dropped %q", d)
	}
}
