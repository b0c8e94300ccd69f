package system

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
)

// LSMs are the Linux security modules the guest kernel runs that a
// container spec can name a label of.
type LSMs struct {
	AppArmor bool
	SELinux  bool
}

// LSMs reads which security modules the guest kernel runs, under
// Options.Sysfs. containerd on an AppArmor host puts its profile
// ("cri-containerd.apparmor.d") in every spec and the runtime forwards it;
// Kata's guest has neither module and never applies such labels. A label is
// only worth keeping when the module is there to enforce it.
func (g *Guest) LSMs() LSMs {
	sys := g.o.Sysfs
	// The list of active modules, from securityfs when it is mounted.
	active := map[string]bool{}
	if b, err := os.ReadFile(filepath.Join(sys, "kernel", "security", "lsm")); err == nil {
		for _, m := range strings.Split(strings.TrimSpace(string(b)), ",") {
			active[m] = true
		}
	}
	// runc decides from the module parameter (libcontainer/apparmor
	// isEnabled), which is there without securityfs.
	aa, _ := os.ReadFile(filepath.Join(sys, "module", "apparmor", "parameters", "enabled"))
	_, selinuxfs := os.Stat(filepath.Join(sys, "fs", "selinux", "enforce"))
	return LSMs{
		AppArmor: active["apparmor"] || bytes.HasPrefix(aa, []byte("Y")),
		SELinux:  active["selinux"] || selinuxfs == nil,
	}
}

// Strip clears the labels of the modules l lacks and names what it cleared,
// for the caller's debug log. A label for a module that runs is kept, so
// that it is enforced (or its absence in the kernel's policy is an error).
func (l LSMs) Strip(apparmorProfile, selinuxLabel, mountLabel *string) []string {
	var dropped []string
	clear := func(what string, v *string, present bool) {
		if v != nil && *v != "" && !present {
			dropped = append(dropped, what+"="+*v)
			*v = ""
		}
	}
	clear("apparmorProfile", apparmorProfile, l.AppArmor)
	clear("selinuxLabel", selinuxLabel, l.SELinux)
	clear("mountLabel", mountLabel, l.SELinux)
	return dropped
}
