package container

import (
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ApplyImageConfig fills the parts of the process a guest-pulled image
// decides, the way the host would have if it had pulled the image itself.
// Only a spec the host could not complete takes it — the sandbox's, whose
// image is the guest's pause bundle, or one without a command; a workload
// spec from containerd already carries the image's config under the pod's
// settings (see sandbox.takesImageConfig). It sets
// the command when the spec has none, the image's environment under the
// spec's (the spec wins per variable), the working directory when the spec
// leaves it empty or "/", and the image's user when the spec's user is unset
// (uid 0 and no additional groups). rootfs is where the image is mounted; the
// user is resolved against its account files.
func ApplyImageConfig(p *specs.Process, img *ocispec.ImageConfig, rootfs string) error {
	if img == nil || p == nil {
		return nil
	}
	if len(p.Args) == 0 {
		p.Args = append(append([]string(nil), img.Entrypoint...), img.Cmd...)
	}
	p.Env = mergeEnv(img.Env, p.Env)
	if (p.Cwd == "" || p.Cwd == "/") && img.WorkingDir != "" {
		p.Cwd = img.WorkingDir
	}
	if img.User != "" && p.User.UID == 0 && p.User.GID == 0 && len(p.User.AdditionalGids) == 0 {
		u, err := ResolveUser(rootfs, img.User)
		if err != nil {
			return err
		}
		p.User = specs.User{UID: u.UID, GID: u.GID, AdditionalGids: u.AdditionalGids}
	}
	return nil
}

// mergeEnv returns base overlaid with over: a variable set in over replaces
// the one in base, keeping base's order for the rest.
func mergeEnv(base, over []string) []string {
	if len(base) == 0 {
		return over
	}
	set := make(map[string]bool, len(over))
	for _, kv := range over {
		set[envKey(kv)] = true
	}
	out := make([]string, 0, len(base)+len(over))
	for _, kv := range base {
		if !set[envKey(kv)] {
			out = append(out, kv)
		}
	}
	return append(out, over...)
}

func envKey(kv string) string {
	k, _, _ := strings.Cut(kv, "=")
	return k
}
