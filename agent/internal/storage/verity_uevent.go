package storage

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// uevent is one kernel uevent as the kernel multicasts it on
// NETLINK_KOBJECT_UEVENT (lib/kobject_uevent.c, kobject_uevent_env): a
// header "<action>@<devpath>", then NUL-separated KEY=value pairs
// (ACTION, DEVPATH, SUBSYSTEM, the caller's extra variables, then the
// device's own: MAJOR, MINOR, DEVNAME, ...; SEQNUM last).
type uevent struct {
	action string
	env    map[string]string
}

// maxUevent bounds a message: the kernel builds each in a buffer of
// UEVENT_BUFFER_SIZE (2048) bytes.
const maxUevent = 2048

// parseUevent parses one kernel uevent message.
func parseUevent(msg []byte) (uevent, error) {
	if len(msg) > maxUevent {
		return uevent{}, fmt.Errorf("uevent of %d bytes, at most %d", len(msg), maxUevent)
	}
	fields := bytes.Split(bytes.TrimRight(msg, "\x00"), []byte{0})
	head := string(fields[0])
	action, _, ok := strings.Cut(head, "@")
	if !ok || action == "" {
		return uevent{}, fmt.Errorf("uevent header %q is not <action>@<devpath>", head)
	}
	ev := uevent{action: action, env: map[string]string{}}
	for _, f := range fields[1:] {
		k, v, ok := strings.Cut(string(f), "=")
		if !ok || k == "" {
			return uevent{}, fmt.Errorf("uevent variable %q is not KEY=value", f)
		}
		ev.env[k] = v
	}
	if ev.env["ACTION"] != action {
		return uevent{}, fmt.Errorf("uevent header action %q, ACTION=%q", action, ev.env["ACTION"])
	}
	return ev, nil
}

// device returns the device number the event is about, when it names one.
func (ev uevent) device() (uint64, bool) {
	maj, err1 := strconv.ParseUint(ev.env["MAJOR"], 10, 32)
	mnr, err2 := strconv.ParseUint(ev.env["MINOR"], 10, 32)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return unix.Mkdev(uint32(maj), uint32(mnr)), true
}

// verityErrVar is the variable dm-verity adds to the KOBJ_CHANGE uevent of
// its mapped device for each block that fails verification, up to 100 per
// device (drivers/md/dm-verity-target.c verity_handle_err,
// DM_VERITY_ENV_VAR_NAME, DM_VERITY_MAX_CORRUPTED_ERRS): "<type>,<block>"
// with type 0 a data block (numbered from the start of the data) and 1 a
// hash-tree block (numbered on the hash device), enum verity_block_type in
// drivers/md/dm-verity.h.
const verityErrVar = "DM_VERITY_ERR_BLOCK_NR"

// parseVerityErr parses the value of DM_VERITY_ERR_BLOCK_NR into the kind
// of block ("data" or "hash") and its number.
func parseVerityErr(s string) (kind string, block uint64, err error) {
	t, n, ok := strings.Cut(s, ",")
	if !ok {
		return "", 0, fmt.Errorf("%s=%q is not <type>,<block>", verityErrVar, s)
	}
	switch t {
	case "0":
		kind = "data"
	case "1":
		kind = "hash"
	default:
		return "", 0, fmt.Errorf("%s=%q: unknown block type %q", verityErrVar, s, t)
	}
	block, err = strconv.ParseUint(n, 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("%s=%q: block number: %w", verityErrVar, s, err)
	}
	return kind, block, nil
}
