package container

import (
	"bytes"
	"strconv"
)

// statStartCodeField is the position of startcode among the fields of
// /proc/<pid>/stat that follow the command name: state is the first of
// them (field 3 of proc(5)), startcode field 26.
const statStartCodeField = 26 - 3

// StatStartCode returns the startcode field of a /proc/<pid>/stat line: the
// address the program's code starts at, 0 while a fresh memory map has no
// program loaded yet (and for a process that has no memory map). The
// command name may hold spaces and parentheses, so the fields are counted
// from the last ')'.
func StatStartCode(stat []byte) (uint64, bool) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	f := bytes.Fields(stat[i+1:])
	if len(f) <= statStartCodeField {
		return 0, false
	}
	v, err := strconv.ParseUint(string(f[statStartCodeField]), 10, 64)
	if err != nil {
		return 0, false
	}
	return v, true
}
