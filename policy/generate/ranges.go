package generate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"

	"go.podman.io/image/v5/types"
)

// Reading a layer in byte ranges bounds what the registry sends: with one
// GET for the whole blob, closing the body early still leaves whatever the
// TCP windows held in flight (measured: anywhere between 0.1 and 2 MiB on
// loopback), so "stop reading once settled" alone does not bound the bytes
// fetched. Ranges of growing size do: at most about twice what the scan
// needed, plus the first range.
const (
	firstRange = 64 << 10
	maxRange   = 1 << 20
)

// blobRanges reaches containers/image's partial blob reads (HTTP Range
// requests made with the source's own auth, TLS settings and mirrors). The
// docker source offers them as GetBlobAt, whose chunk type lives in an
// internal package, so the method is found and called by reflection; a
// source without it (or with another shape) reads whole blobs instead.
type blobRanges struct {
	method reflect.Value // the source's bound GetBlobAt
	chunk  reflect.Type  // its chunk element: struct{Offset, Length uint64}
}

// rangesOf returns src's partial reads, or nil when it has none.
func rangesOf(src types.ImageSource) *blobRanges {
	m := reflect.ValueOf(src).MethodByName("GetBlobAt")
	if !m.IsValid() {
		return nil
	}
	t := m.Type()
	ctxType := reflect.TypeOf((*context.Context)(nil)).Elem()
	if t.NumIn() != 3 || t.NumOut() != 3 || t.In(0) != ctxType || t.In(1) != reflect.TypeOf(types.BlobInfo{}) ||
		t.In(2).Kind() != reflect.Slice || t.Out(0) != reflect.TypeOf((chan io.ReadCloser)(nil)) ||
		t.Out(1) != reflect.TypeOf((chan error)(nil)) || t.Out(2) != reflect.TypeOf((*error)(nil)).Elem() {
		return nil
	}
	chunk := t.In(2).Elem()
	if chunk.Kind() != reflect.Struct {
		return nil
	}
	for _, name := range []string{"Offset", "Length"} {
		if f, ok := chunk.FieldByName(name); !ok || f.Type.Kind() != reflect.Uint64 {
			return nil
		}
	}
	return &blobRanges{method: m, chunk: chunk}
}

// get returns bytes [off, off+n) of a blob.
func (r *blobRanges) get(ctx context.Context, bi types.BlobInfo, off, n uint64) (io.ReadCloser, error) {
	chunks := reflect.MakeSlice(reflect.SliceOf(r.chunk), 1, 1)
	chunks.Index(0).FieldByName("Offset").SetUint(off)
	chunks.Index(0).FieldByName("Length").SetUint(n)
	out := r.method.Call([]reflect.Value{reflect.ValueOf(ctx), reflect.ValueOf(bi), chunks})
	if err, _ := out[2].Interface().(error); err != nil {
		return nil, err
	}
	streams, errs := out[0].Interface().(chan io.ReadCloser), out[1].Interface().(chan error)
	rc, ok := <-streams
	if !ok {
		err := <-errs
		if err == nil {
			err = errors.New("no data")
		}
		return nil, fmt.Errorf("range %d+%d: %w", off, n, err)
	}
	return &rangeBody{ReadCloser: rc, streams: streams, errs: errs}, nil
}

// rangeBody is one range's data; closing it also drains what the source
// has left to say about the request, so its goroutine ends.
type rangeBody struct {
	io.ReadCloser
	streams chan io.ReadCloser
	errs    chan error
}

func (b *rangeBody) Close() error {
	err := b.ReadCloser.Close()
	go func() {
		for rc := range b.streams {
			rc.Close()
		}
		for range b.errs {
		}
	}()
	return err
}

// rangeReader reads a blob of known size as consecutive ranges, each
// twice the previous up to maxRange, fetching the next only when the
// reader asks for it.
type rangeReader struct {
	ctx  context.Context
	r    *blobRanges
	bi   types.BlobInfo
	off  uint64 // where the next range starts
	size uint64
	next uint64 // the next range's length
	cur  io.ReadCloser
	left int64 // bytes of the current range not read yet
}

func newRangeReader(ctx context.Context, r *blobRanges, bi types.BlobInfo) *rangeReader {
	return &rangeReader{ctx: ctx, r: r, bi: bi, size: uint64(bi.Size), next: firstRange}
}

// open fetches the next range.
func (rr *rangeReader) open() error {
	n := min(rr.next, rr.size-rr.off)
	rc, err := rr.r.get(rr.ctx, rr.bi, rr.off, n)
	if err != nil {
		return err
	}
	rr.cur, rr.left, rr.off = rc, int64(n), rr.off+n
	rr.next = min(2*rr.next, maxRange)
	return nil
}

func (rr *rangeReader) Read(p []byte) (int, error) {
	for {
		if rr.cur == nil {
			if rr.off >= rr.size {
				return 0, io.EOF
			}
			if err := rr.open(); err != nil {
				return 0, err
			}
		}
		if int64(len(p)) > rr.left {
			p = p[:rr.left]
		}
		n, err := rr.cur.Read(p)
		rr.left -= int64(n)
		switch {
		case rr.left == 0:
			rr.cur.Close()
			rr.cur = nil
			if n > 0 {
				return n, nil
			}
		case errors.Is(err, io.EOF):
			// A range shorter than asked would leave a hole in the stream.
			return n, fmt.Errorf("range ending at %d: %w", rr.off, io.ErrUnexpectedEOF)
		default:
			return n, err
		}
	}
}

func (rr *rangeReader) Close() error {
	if rr.cur != nil {
		return rr.cur.Close()
	}
	return nil
}
