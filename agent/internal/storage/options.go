package storage

import (
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/cocoon-tee/cocoon/internal/errs"
)

// maxMountData bounds the data string handed to mount(2); the kernel copies
// at most one page of it and silently truncates the rest.
const maxMountData = 4096

// maxOptions bounds how many options one storage may carry.
const maxOptions = 256

// MountOptions is a storage's option list split the way mount(2) wants it.
type MountOptions struct {
	// Flags are the MS_* flags, without propagation flags.
	Flags uintptr
	// Propagation is MS_SHARED, MS_PRIVATE, MS_SLAVE or MS_UNBINDABLE (with
	// MS_REC for the r-variants), applied by a second mount call because
	// the kernel ignores it when combined with other flags.
	Propagation uintptr
	// Data are the file-system specific options, in order.
	Data []string
	// FSGid is the group from a "fsgid=N" option (Kata's fs_group shortcut),
	// -1 when absent. It is never passed to the kernel.
	FSGid int64
	// Mode is the permission bits of a "mode=NNNN" option, -1 when absent.
	// It stays in Data too: tmpfs understands it.
	Mode int64
	// Size is the raw value of a "size=" option, "" when absent; it stays in Data.
	Size string
	// Kata holds io.katacontainers.* options, which steer the agent and are
	// never passed to the kernel.
	Kata []string
}

// ReadOnly reports whether the options ask for a read-only mount.
func (o MountOptions) ReadOnly() bool { return o.Flags&unix.MS_RDONLY != 0 }

// DataString joins Data for mount(2).
func (o MountOptions) DataString() string { return strings.Join(o.Data, ",") }

// flagOption describes one option that maps onto mount flags: set adds
// bits, clear removes them.
type flagOption struct {
	set, clear uintptr
}

var flagTable = map[string]flagOption{
	"ro":            {set: unix.MS_RDONLY},
	"rw":            {clear: unix.MS_RDONLY},
	"nosuid":        {set: unix.MS_NOSUID},
	"suid":          {clear: unix.MS_NOSUID},
	"nodev":         {set: unix.MS_NODEV},
	"dev":           {clear: unix.MS_NODEV},
	"noexec":        {set: unix.MS_NOEXEC},
	"exec":          {clear: unix.MS_NOEXEC},
	"sync":          {set: unix.MS_SYNCHRONOUS},
	"async":         {clear: unix.MS_SYNCHRONOUS},
	"dirsync":       {set: unix.MS_DIRSYNC},
	"mand":          {set: unix.MS_MANDLOCK},
	"nomand":        {clear: unix.MS_MANDLOCK},
	"noatime":       {set: unix.MS_NOATIME},
	"atime":         {clear: unix.MS_NOATIME},
	"nodiratime":    {set: unix.MS_NODIRATIME},
	"diratime":      {clear: unix.MS_NODIRATIME},
	"relatime":      {set: unix.MS_RELATIME},
	"norelatime":    {clear: unix.MS_RELATIME},
	"strictatime":   {set: unix.MS_STRICTATIME},
	"nostrictatime": {clear: unix.MS_STRICTATIME},
	"lazytime":      {set: unix.MS_LAZYTIME},
	"nolazytime":    {clear: unix.MS_LAZYTIME},
	"bind":          {set: unix.MS_BIND},
	"rbind":         {set: unix.MS_BIND | unix.MS_REC},
	"silent":        {set: unix.MS_SILENT},
	"loud":          {clear: unix.MS_SILENT},
	// "defaults" is what fstab writes when nothing else is wanted.
	"defaults": {},
}

var propagationTable = map[string]uintptr{
	"shared":      unix.MS_SHARED,
	"rshared":     unix.MS_SHARED | unix.MS_REC,
	"private":     unix.MS_PRIVATE,
	"rprivate":    unix.MS_PRIVATE | unix.MS_REC,
	"slave":       unix.MS_SLAVE,
	"rslave":      unix.MS_SLAVE | unix.MS_REC,
	"unbindable":  unix.MS_UNBINDABLE,
	"runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

// refused are options that would make the agent do something the host must
// not ask for: remount or move existing mounts, or set up loop devices.
var refused = map[string]string{
	"remount": "remounting is not a storage operation",
	"move":    "moving mounts is not a storage operation",
	"loop":    "loop devices are not set up for storages",
}

// ParseOptions turns a Storage.options list into mount flags and data.
// Entries may themselves be comma-separated ("ro,nosuid"). Unknown options
// are file-system data and are left for the kernel to judge; an option the
// agent understands (fsgid, mode, size) must be well formed.
func ParseOptions(opts []string) (MountOptions, error) {
	o := MountOptions{FSGid: -1, Mode: -1}
	if len(opts) > maxOptions {
		return o, invalid("%d mount options, more than %d", len(opts), maxOptions)
	}
	dataLen := 0
	for _, entry := range opts {
		if strings.ContainsRune(entry, 0) {
			return o, invalid("mount option %q contains NUL", entry)
		}
		for _, opt := range strings.Split(entry, ",") {
			if opt == "" {
				continue
			}
			if why, ok := refused[opt]; ok {
				return o, invalid("mount option %q refused: %s", opt, why)
			}
			if f, ok := flagTable[opt]; ok {
				o.Flags = o.Flags&^f.clear | f.set
				continue
			}
			if p, ok := propagationTable[opt]; ok {
				o.Propagation = p
				continue
			}
			if strings.HasPrefix(opt, "io.katacontainers.") {
				o.Kata = append(o.Kata, opt)
				continue
			}
			key, val, hasVal := strings.Cut(opt, "=")
			switch key {
			case "fsgid":
				gid, err := strconv.ParseUint(val, 10, 32)
				if !hasVal || err != nil || gid > 0x7fffffff {
					return o, invalid("mount option %q: want fsgid=<group id>", opt)
				}
				o.FSGid = int64(gid)
				continue // never for the kernel
			case "mode":
				m, err := strconv.ParseUint(val, 8, 32)
				if !hasVal || err != nil || m > 0o7777 {
					return o, invalid("mount option %q: want mode=<octal permission bits up to 7777>", opt)
				}
				o.Mode = int64(m)
			case "size":
				if !hasVal || !validSize(val) {
					return o, invalid("mount option %q: want size=<bytes>[k|m|g|t|p|e] or size=<percent>%%", opt)
				}
				o.Size = val
			}
			dataLen += len(opt) + 1
			if dataLen > maxMountData {
				return o, invalid("mount data is longer than %d bytes", maxMountData)
			}
			o.Data = append(o.Data, opt)
		}
	}
	return o, nil
}

// validSize accepts what tmpfs accepts for size=: a number with an optional
// binary suffix, or a percentage of RAM.
func validSize(v string) bool {
	if v == "" {
		return false
	}
	num := v
	if strings.HasSuffix(v, "%") {
		num = v[:len(v)-1]
	} else if c := v[len(v)-1]; strings.IndexByte("kKmMgGtTpPeE", c) >= 0 {
		num = v[:len(v)-1]
	}
	if num == "" || len(num) > 20 {
		return false
	}
	_, err := strconv.ParseUint(num, 10, 64)
	return err == nil
}

// invalid builds an INVALID_ARGUMENT error.
func invalid(format string, args ...any) error {
	return errs.Newf(errdefs.ErrInvalidArgument, format, args...)
}

// denied builds a PERMISSION_DENIED error.
func denied(format string, args ...any) error {
	return errs.Newf(errdefs.ErrPermissionDenied, format, args...)
}
