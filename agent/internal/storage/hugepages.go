package storage

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// maxHugepages bounds how many pages one volume may reserve; the kernel
// would refuse more than memory allows anyway, this keeps the number sane.
const maxHugepages = 1 << 24

// reserveHugepages makes the kernel's pool for the volume's page size hold
// size/pagesize pages (Kata semantics: both options in bytes), and checks
// that the kernel really reserved them.
func (b *builtin) reserveHugepages(o MountOptions) error {
	var pagesize, size uint64
	var err error
	for _, kv := range o.Data {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "pagesize":
			if pagesize, err = strconv.ParseUint(v, 10, 64); err != nil {
				return invalid("hugetlbfs option %q: want pagesize=<bytes>", kv)
			}
		case "size":
			if size, err = strconv.ParseUint(v, 10, 64); err != nil {
				return invalid("hugetlbfs option %q: want size=<bytes>", kv)
			}
		}
	}
	if pagesize == 0 || size == 0 || pagesize%1024 != 0 {
		return invalid("hugetlbfs storage needs pagesize=<bytes, multiple of 1024> and size=<bytes> options")
	}
	pages := size / pagesize
	if pages == 0 || pages > maxHugepages {
		return invalid("hugetlbfs storage: %d pages of %d bytes is out of range", pages, pagesize)
	}
	nr := filepath.Join(b.opts.SysfsRoot, "kernel/mm/hugepages", fmt.Sprintf("hugepages-%dkB", pagesize/1024), "nr_hugepages")
	if err := os.WriteFile(nr, []byte(strconv.FormatUint(pages, 10)), 0); err != nil {
		if os.IsNotExist(err) {
			return invalid("hugetlbfs storage: the kernel has no %d-byte huge pages", pagesize)
		}
		return fmt.Errorf("reserve huge pages: %w", err)
	}
	got, err := os.ReadFile(nr)
	if err != nil {
		return fmt.Errorf("reserve huge pages: %w", err)
	}
	if n, err := strconv.ParseUint(strings.TrimSpace(string(got)), 10, 64); err != nil || n != pages {
		return fmt.Errorf("reserve huge pages: asked for %d pages of %d bytes, the kernel has %q", pages, pagesize, strings.TrimSpace(string(got)))
	}
	return nil
}

// cloneWithFstype returns a copy of s with its fstype set, leaving the
// caller's request untouched.
func cloneWithFstype(s *Storage, fstype string) *Storage {
	c := s.clone()
	c.Fstype = fstype
	return c
}
