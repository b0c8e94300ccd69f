package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// maxConfigFile bounds the TOML file we read.
const maxConfigFile = 1 << 20

// Sources are the raw inputs of the configuration. Tests fill them in
// directly; main reads them from the running system.
type Sources struct {
	// Cmdline is the content of /proc/cmdline ("" when not read).
	Cmdline string
	// LookupEnv reads an environment variable; nil means no environment.
	LookupEnv func(string) (string, bool)
	// Args are the command-line arguments, without the program name.
	Args []string
	// ReadFile reads the TOML configuration file.
	ReadFile func(string) ([]byte, error)
}

// Result is a loaded Config plus what the loader noticed but did not act on.
type Result struct {
	Config Config
	// Ignored lists the unknown agent.* kernel parameters.
	Ignored []string
	// HostIgnored lists, sorted and once each, the host inputs (kernel
	// parameters, environment variables, flags) refused because they could
	// weaken a confidential agent. The caller logs them as one warning.
	HostIgnored []string
}

// Load builds the configuration from src. Any malformed value is an error
// that names its source; nothing is silently replaced by a default.
//
// The image file (ImageFile) is the lowest layer above the defaults. Outside
// confidential mode every other source applies on top of it in Kata's
// precedence. When the image file, or any host source, asks for confidential
// mode, the host sources are applied through the trust table instead
// (trustRules): keys that could weaken the agent keep the image's value and
// are reported in HostIgnored, and a host-named configuration file is not
// read at all.
func Load(src Sources) (Result, error) {
	fl, err := parseFlags(src.Args)
	if err != nil {
		return Result{}, err
	}
	image := Default()
	haveImage, err := applyImageFile(&image, src.ReadFile)
	if err != nil {
		return Result{}, err
	}
	var r Result
	var unknown []Unknown
	if !image.Confidential {
		if r.Config, unknown, err = applyHost(image, fl, src); err != nil {
			return Result{}, err
		}
	}
	// The host may ask for confidential mode: it only makes the agent
	// stricter. Either way, the host's inputs are then judged key by key,
	// and a file the host names is never opened.
	if image.Confidential || r.Config.Confidential {
		if r.Config, r.HostIgnored, unknown, err = applyConfidential(image, fl, src); err != nil {
			return Result{}, err
		}
	}
	for _, u := range unknown {
		r.Ignored = append(r.Ignored, u.Key)
	}
	if r.Config.ConfigFile == "" && haveImage {
		r.Config.ConfigFile = ImageFile
	}
	return r, nil
}

// applyImageFile applies ImageFile when the image has one.
func applyImageFile(c *Config, read func(string) ([]byte, error)) (bool, error) {
	if read == nil {
		return false, nil
	}
	data, err := read(ImageFile)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("image config file: %w", err)
	}
	if err := decodeFile(c, ImageFile, data); err != nil {
		return false, err
	}
	return true, nil
}

// applyHost layers the host's sources on base in Kata's precedence: the
// file named by --config or agent.config_file, the kernel command line, the
// environment, the flags.
func applyHost(base Config, fl *flags, src Sources) (Config, []Unknown, error) {
	c := base
	file := fl.config
	if file == "" {
		probe := Default()
		if _, err := applyCmdline(&probe, src.Cmdline); err == nil {
			file = probe.ConfigFile
		}
	}
	if file != "" {
		if err := applyFile(&c, file, src.ReadFile); err != nil {
			return Config{}, nil, err
		}
	}
	unknown, err := applyCmdline(&c, src.Cmdline)
	if err != nil {
		return Config{}, nil, err
	}
	if err := applyEnv(&c, src.LookupEnv); err != nil {
		return Config{}, nil, err
	}
	if err := fl.apply(&c); err != nil {
		return Config{}, nil, err
	}
	c.ConfigFile = file
	return c, unknown, nil
}

// applyConfidential builds a confidential agent's configuration: the image
// file, then each host source admitted through the trust table. A file the
// host names is refused whole: it could only restate what the kernel
// command line may already say, or move the image's settings.
func applyConfidential(image Config, fl *flags, src Sources) (Config, []string, []Unknown, error) {
	c := image
	c.Confidential = true
	var refused []string
	if fl.set["config"] {
		refused = append(refused, "--config")
	}
	next := c
	unknown, err := applyCmdline(&next, src.Cmdline)
	if err != nil {
		return Config{}, nil, nil, err
	}
	c, r := admit(c, next, fromCmdline, cmdlineKeys(src.Cmdline))
	refused = append(refused, r...)
	next = c
	if err := applyEnv(&next, src.LookupEnv); err != nil {
		return Config{}, nil, nil, err
	}
	c, r = admit(c, next, fromEnv, nil)
	refused = append(refused, r...)
	next = c
	if err := fl.apply(&next); err != nil {
		return Config{}, nil, nil, err
	}
	c, r = admit(c, next, fromFlags, nil)
	refused = append(refused, r...)
	return c, sortedUnique(refused), unknown, nil
}

// cmdlineKeys is the set of parameter names on a kernel command line.
func cmdlineKeys(cmdline string) map[string]bool {
	keys := map[string]bool{}
	for _, f := range strings.Fields(cmdline) {
		k, _, _ := strings.Cut(f, "=")
		keys[k] = true
	}
	return keys
}

func applyEnv(c *Config, lookup func(string) (string, bool)) error {
	if lookup == nil {
		return nil
	}
	if v, ok := lookup("KATA_AGENT_SERVER_ADDR"); ok && v != "" {
		c.ServerAddr = v
	}
	if v, ok := lookup("KATA_AGENT_LOG_LEVEL"); ok && v != "" {
		lvl, err := ParseLogLevel(v)
		if err != nil {
			return fmt.Errorf("KATA_AGENT_LOG_LEVEL: %w", err)
		}
		c.LogLevel, c.LogLevelName = lvl, v
	}
	if v, ok := lookup("KATA_AGENT_POLICY_FILE"); ok && v != "" {
		c.PolicyFile = v
	}
	return nil
}

// fileConfig is the TOML shape: Kata's keys, with timeouts in seconds.
type fileConfig struct {
	Config
	HotplugTimeout       *uint32 `toml:"hotplug_timeout"`
	ImagePullTimeout     *uint32 `toml:"image_pull_timeout"`
	LaunchProcessTimeout *uint32 `toml:"launch_process_timeout"`
	CDHAPITimeout        *uint32 `toml:"cdh_api_timeout"`
}

func applyFile(c *Config, path string, read func(string) ([]byte, error)) error {
	if read == nil {
		return fmt.Errorf("config file %s: no file system to read it from", path)
	}
	data, err := read(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	return decodeFile(c, path, data)
}

// decodeFile applies one TOML configuration file's content to c.
func decodeFile(c *Config, path string, data []byte) error {
	fc := fileConfig{Config: *c}
	var err error
	if err := decodeTOML(data, &fc); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	if fc.LogLevelName != c.LogLevelName {
		if fc.LogLevel, err = ParseLogLevel(fc.LogLevelName); err != nil {
			return fmt.Errorf("config file %s: log_level: %w", path, err)
		}
	}
	for _, t := range []struct {
		src *uint32
		dst *time.Duration
	}{
		{fc.HotplugTimeout, &fc.Config.HotplugTimeout},
		{fc.ImagePullTimeout, &fc.Config.ImagePullTimeout},
		{fc.LaunchProcessTimeout, &fc.Config.LaunchProcessTimeout},
		{fc.CDHAPITimeout, &fc.Config.CDHAPITimeout},
	} {
		if t.src == nil {
			continue
		}
		if *t.dst = time.Duration(*t.src) * time.Second; *t.dst > maxTimeout {
			return fmt.Errorf("config file %s: timeout %s exceeds %s", path, *t.dst, maxTimeout)
		}
	}
	if fc.ContainerPipeSize < 0 || fc.ContainerPipeSize > maxPipeSize {
		return fmt.Errorf("config file %s: container_pipe_size %d out of range", path, fc.ContainerPipeSize)
	}
	if _, err := ParseKBSResources(fc.KBSResources); err != nil {
		return fmt.Errorf("config file %s: kbs_resources: %w", path, err)
	}
	if !validCgroupParent(fc.CgroupParent) {
		return fmt.Errorf("config file %s: cgroup_parent %q must be a clean absolute path below the hierarchy's root", path, fc.CgroupParent)
	}
	*c = fc.Config
	return nil
}

func validCgroupParent(p string) bool {
	return path.IsAbs(p) && path.Clean(p) == p && p != "/"
}

// decodeTOML decodes strictly: unknown keys are an error, not a surprise later.
func decodeTOML(data []byte, v any) error {
	if len(data) > maxConfigFile {
		return fmt.Errorf("%d bytes is larger than %d", len(data), maxConfigFile)
	}
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(v)
	if err != nil {
		return err
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return fmt.Errorf("unknown keys: %s", strings.Join(keys, ", "))
	}
	return nil
}

// HelpError is what Load returns for --help: the caller prints Usage and
// exits successfully.
type HelpError struct{ Usage string }

func (e *HelpError) Error() string { return e.Usage }

type flags struct {
	set                     map[string]bool
	config, addr, logLevel  string
	policyFile, decisionLog string
	initdataDevice          string
	confidential            bool
}

func parseFlags(args []string) (*flags, error) {
	f := &flags{set: map[string]bool{}}
	fs := flag.NewFlagSet("cocoon-agent", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	// A back-quoted word is the value's placeholder in --help (flag.UnquoteUsage).
	fs.StringVar(&f.config, "config", "", "TOML configuration `FILE` (keys below; ignored in confidential mode)")
	fs.StringVar(&f.addr, "addr", "", "listen `ADDR`: vsock://CID:PORT, unix:///path, unix://@name, tcp://host:port")
	fs.StringVar(&f.logLevel, "log-level", "", "log `LEVEL`: trace, debug, info, warn, error")
	fs.StringVar(&f.policyFile, "policy-file", "", "default Rego policy `FILE`")
	fs.StringVar(&f.decisionLog, "decision-log", "", "policy decision log `FILE`")
	fs.StringVar(&f.initdataDevice, "initdata", "", "initdata block `DEVICE` or image file")
	fs.BoolVar(&f.confidential, "confidential", false, "refuse permissive fallbacks and weakening host settings")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, &HelpError{Usage: "usage: cocoon-agent " + usage(fs)}
		}
		return nil, fmt.Errorf("flags: %w", err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	return f, nil
}

// usage is the --help text: every flag, then every configuration key with
// its spellings in each source and who may set it in confidential mode.
func usage(fs *flag.FlagSet) string {
	var b strings.Builder
	b.WriteString("[flags]\n\nFlags (they override every other source):\n")
	fs.VisitAll(func(fl *flag.Flag) {
		name, text := flag.UnquoteUsage(fl)
		fmt.Fprintf(&b, "  %-28s %s\n", strings.TrimSpace("--"+fl.Name+" "+name), text)
	})
	fmt.Fprintf(&b, "\nConfiguration keys, lowest precedence first: built-in defaults, the image's %s,\n", ImageFile)
	b.WriteString("the --config file, the kernel command line, the environment, the flags. Columns: TOML key,\n")
	b.WriteString("kernel command line / environment / flag, who may set it in confidential mode\n(docs/security.md).\n")
	for _, r := range trustRules {
		host := append(append([]string{}, r.cmdline...), nonEmptyOnly(r.env)...)
		host = append(host, nonEmptyOnly(r.flag)...)
		if len(host) == 0 {
			host = []string{"-"}
		}
		fmt.Fprintf(&b, "  %-30s %-58s %s\n", r.key, strings.Join(host, " "), trustHelp[r.trust])
	}
	return b.String()
}

var trustHelp = map[trust]string{
	hostOK:       "host",
	stricterOnly: "host, only stricter",
	imageOnly:    "image only",
}

func (f *flags) apply(c *Config) error {
	if f.set["addr"] {
		c.ServerAddr = f.addr
	}
	if f.set["log-level"] {
		lvl, err := ParseLogLevel(f.logLevel)
		if err != nil {
			return fmt.Errorf("--log-level: %w", err)
		}
		c.LogLevel, c.LogLevelName = lvl, f.logLevel
	}
	if f.set["policy-file"] {
		c.PolicyFile = f.policyFile
	}
	if f.set["decision-log"] {
		c.DecisionLog = f.decisionLog
	}
	if f.set["initdata"] {
		c.InitdataDevice = f.initdataDevice
	}
	if f.set["confidential"] {
		c.Confidential = f.confidential
	}
	return nil
}
