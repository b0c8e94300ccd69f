package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cocoon-tee/cocoon/agent/initdata"
	"github.com/cocoon-tee/cocoon/policy/generate"
)

func newPolicyGenerate() *cobra.Command {
	var (
		o                               generate.Options
		settingsPath, aaPath, cdhPath   string
		outYAML, outPolicy, outInitdata string
		printSettings, noCache          bool
		platform                        string
	)
	cmd := &cobra.Command{
		Use:   "generate [flags] WORKLOAD.yaml",
		Short: "Write the pod owner's policy from Kubernetes YAML, images pinned by digest",
		Long: `Reads Pods, Deployments, ReplicaSets, ReplicationControllers, StatefulSets,
DaemonSets, Jobs, CronJobs and Lists (with their ConfigMaps and Secrets),
resolves every image to name@sha256:..., and writes a Rego policy that allows
exactly these containers plus the runtime's fixed parts and the settings'
allowances. Prints the initdata annotation and its digest (for SNP HOST_DATA
or TDX MRCONFIGID). See docs/policy-generate.md.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if printSettings {
				s, err := generate.DefaultSettingsText()
				if err != nil {
					return err
				}
				_, err = cmd.OutOrStdout().Write(s)
				return err
			}
			if len(args) != 1 {
				return fmt.Errorf("give the workload YAML file (- for stdin)")
			}
			yaml, err := readFileBounded(args[0], generate.MaxInputSize)
			if err != nil {
				return err
			}
			if settingsPath != "" {
				b, err := readFileBounded(settingsPath, generate.MaxSettingsSize)
				if err != nil {
					return err
				}
				if o.Settings, err = generate.ParseSettings(b); err != nil {
					return err
				}
			}
			for _, f := range []struct {
				path string
				dst  *string
			}{{aaPath, &o.AAToml}, {cdhPath, &o.CDHToml}} {
				if f.path != "" {
					b, err := readFileBounded(f.path, 1<<20)
					if err != nil {
						return err
					}
					*f.dst = string(b)
				}
			}
			if platform != "" {
				if err := parsePlatform(platform, &o.Images); err != nil {
					return err
				}
			}
			if !noCache && o.Images.CacheDir == "" {
				if d, err := os.UserCacheDir(); err == nil {
					o.Images.CacheDir = filepath.Join(d, "cocoon", "images")
				}
			}
			res, err := generate.Generate(cmd.Context(), yaml, o)
			if err != nil {
				return err
			}
			for _, w := range []struct {
				path string
				data []byte
			}{{outYAML, res.YAML}, {outPolicy, []byte(res.Policy)}, {outInitdata, res.Initdata.Raw}} {
				if w.path != "" {
					if err := os.WriteFile(w.path, w.data, 0o644); err != nil {
						return err
					}
				}
			}
			out := cmd.OutOrStdout()
			for ref, info := range res.Images {
				fmt.Fprintf(cmd.ErrOrStderr(), "image %s -> %s\n", ref, info.Pinned)
			}
			fmt.Fprintf(out, "%s: %s\n", initdata.AnnotationKey, res.Annotation)
			fmt.Fprintf(out, "initdata %s: %s\n", res.Initdata.Algorithm, res.Initdata.DigestHex())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&settingsPath, "settings", "", "settings file (JSON or TOML; default: the embedded settings, see --print-settings)")
	f.BoolVar(&printSettings, "print-settings", false, "print the embedded default settings and exit")
	f.StringVar(&o.Namespace, "namespace", "", "pin the pod's namespace (not pinned without it)")
	f.BoolVar(&o.PinLayers, "pin-layers", false, "pin every image layer's dm-verity root hash (builds each layer with mkfs.erofs >= 1.8.2; guest pull stays allowed)")
	f.StringVar(&o.Mkfs, "mkfs-erofs", "", "mkfs.erofs for --pin-layers (default: found on PATH or under /opt/cocoon/erofs-utils)")
	f.StringSliceVar(&o.Profiles, "profile", nil, "enable an optional allowance profile from the settings (istio, linkerd, downward-api)")
	f.StringVar(&platform, "platform", "linux/amd64", "target platform OS/ARCH[/VARIANT] for multi-arch images")
	f.StringVar(&o.Images.RegistriesConf, "registries-conf", "", "registries.conf path (default: the system's)")
	f.StringVar(&o.Images.AuthFile, "authfile", "", "auth.json path (default: containers/image's locations)")
	f.StringVar(&o.Images.CacheDir, "cache-dir", "", "content-addressed image cache (default: the user cache dir)")
	f.BoolVar(&noCache, "no-cache", false, "do not use an image cache")
	f.BoolVar(&o.NoDigestLock, "no-digest-lock", false, "keep the YAML's image references (the policy still pins digests)")
	f.StringVar(&aaPath, "aa-toml", "", "aa.toml to put into initdata")
	f.StringVar(&cdhPath, "cdh-toml", "", "cdh.toml to put into initdata")
	f.StringVar(&o.Algorithm, "algorithm", "sha256", "initdata digest algorithm: sha256, sha384 or sha512")
	f.BoolVar(&o.Inject, "inject", false, "write the initdata annotation into the output YAML")
	f.StringVarP(&outYAML, "output", "o", "", "write the (digest-locked) YAML here")
	f.StringVar(&outPolicy, "policy-out", "", "write the policy here")
	f.StringVar(&outInitdata, "initdata-out", "", "write the initdata TOML here")
	return cmd
}

func parsePlatform(p string, o *generate.ImageOptions) error {
	fields := strings.Split(p, "/")
	if len(fields) < 2 || len(fields) > 3 || fields[0] == "" || fields[1] == "" {
		return fmt.Errorf("--platform %q: want OS/ARCH[/VARIANT]", p)
	}
	o.OS, o.Arch = fields[0], fields[1]
	if len(fields) == 3 {
		o.Variant = fields[2]
	}
	return nil
}
