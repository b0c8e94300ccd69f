package initdata

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Magic opens an initdata image.
const Magic = "initdata"

// MaxCompressed bounds the gzip length an image may declare.
const MaxCompressed = 16 << 20

const sectorSize = 512

// ReadImage parses an initdata image from r: magic, u64 LE gzip length,
// gzip of the TOML. Bytes after the gzip (padding) are ignored.
func ReadImage(r io.Reader) (*Initdata, error) {
	var hdr [16]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("initdata image: header: %w", err)
	}
	if string(hdr[:8]) != Magic {
		return nil, fmt.Errorf("initdata image: bad magic %q (want %q)", hdr[:8], Magic)
	}
	n := binary.LittleEndian.Uint64(hdr[8:])
	if n == 0 || n > MaxCompressed {
		return nil, fmt.Errorf("initdata image: gzip length %d out of range (1..%d)", n, MaxCompressed)
	}
	gz := make([]byte, n)
	if _, err := io.ReadFull(r, gz); err != nil {
		return nil, fmt.Errorf("initdata image: gzip of %d bytes truncated: %w", n, err)
	}
	raw, err := gunzip(gz)
	if err != nil {
		return nil, err
	}
	return Parse(raw)
}

// ParseImage is ReadImage over a byte slice.
func ParseImage(img []byte) (*Initdata, error) {
	return ReadImage(bytes.NewReader(img))
}

// gunzip decompresses at most MaxTOML bytes.
func gunzip(gz []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, fmt.Errorf("initdata: invalid gzip: %w", err)
	}
	raw, err := io.ReadAll(io.LimitReader(zr, MaxTOML+1))
	if err != nil {
		return nil, fmt.Errorf("initdata: invalid gzip: %w", err)
	}
	if len(raw) > MaxTOML {
		return nil, fmt.Errorf("initdata: decompressed document exceeds %d bytes", MaxTOML)
	}
	return raw, nil
}

// Load reads the initdata image at path (a block device or a file).
func Load(path string) (*Initdata, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("initdata: %w", err)
	}
	defer f.Close()
	d, err := ReadImage(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return d, nil
}

// ErrNoDevice means no initdata device is attached.
var ErrNoDevice = errors.New("no initdata device found")

// Find looks for the device Kata attaches, as the Kata agent does: a block
// device in devDir named vd* (virtio-blk) or sd* (virtio-scsi) whose first
// eight bytes are the magic. Devices are tried in name order.
func Find(devDir string) (string, error) {
	entries, err := os.ReadDir(devDir)
	if err != nil {
		return "", fmt.Errorf("initdata: %w", err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, "vd") || strings.HasPrefix(n, "sd") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		p := filepath.Join(devDir, n)
		st, err := os.Stat(p)
		if err != nil || st.Mode()&os.ModeDevice == 0 || st.Mode()&os.ModeCharDevice != 0 {
			continue
		}
		if hasMagic(p) {
			return p, nil
		}
	}
	return "", ErrNoDevice
}

func hasMagic(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var m [8]byte
	_, err = io.ReadFull(f, m[:])
	return err == nil && string(m[:]) == Magic
}

// Discover returns the initdata the agent was started with: from device when
// set, else — when scan is true — from the first attached device carrying the
// magic in /dev. No device is (nil, nil); a device that does not parse is an
// error.
func Discover(device string, scan bool) (*Initdata, error) {
	if device == "" {
		if !scan {
			return nil, nil
		}
		p, err := Find("/dev")
		if errors.Is(err, ErrNoDevice) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		device = p
	}
	return Load(device)
}
