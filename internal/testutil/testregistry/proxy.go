package testregistry

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// Proxy is a reverse proxy in front of a registry that counts blob
// downloads and can corrupt or cut them, to test what the puller does when
// the network misbehaves.
type Proxy struct {
	// Addr is host:port of the proxy.
	Addr string

	mu        sync.Mutex
	blobGets  map[string]int
	bytes     int64
	cutFirst  int
	cutAfter  int64
	flipBytes bool
}

// NewProxy starts a proxy forwarding to r until the test ends.
func NewProxy(t testing.TB, r *Registry) *Proxy {
	t.Helper()
	target, _ := url.Parse("http://" + r.Addr)
	p := &Proxy{blobGets: map[string]int{}}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.Method == http.MethodGet && strings.Contains(resp.Request.URL.Path, "/blobs/sha256:") && (resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusPartialContent) {
			resp.Body = p.wrap(resp.Request.URL.Path, resp.ContentLength, resp.Body)
		}
		return nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(rp)
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	p.Addr = l.Addr().String()
	return p
}

// CutFirst makes the next n blob downloads larger than `after` bytes stop
// after `after` bytes.
func (p *Proxy) CutFirst(n int, after int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutFirst, p.cutAfter = n, after
}

// FlipBytes corrupts one byte in every blob download from now on.
func (p *Proxy) FlipBytes(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.flipBytes = on
}

// BlobGets is the number of blob downloads started so far.
func (p *Proxy) BlobGets() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.blobGets {
		n += c
	}
	return n
}

// Bytes is the number of blob bytes sent so far.
func (p *Proxy) Bytes() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.bytes
}

func (p *Proxy) wrap(path string, size int64, body interface {
	Read([]byte) (int, error)
	Close() error
}) *faultyBody {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blobGets[path]++
	fb := &faultyBody{body: body, p: p, limit: -1}
	if p.cutFirst > 0 && size > p.cutAfter {
		p.cutFirst--
		fb.limit = p.cutAfter
	}
	fb.flip = p.flipBytes
	return fb
}

type faultyBody struct {
	body interface {
		Read([]byte) (int, error)
		Close() error
	}
	p       *Proxy
	n       int64
	limit   int64
	flip    bool
	flipped bool
}

func (b *faultyBody) Read(buf []byte) (int, error) {
	if b.limit >= 0 && b.n >= b.limit {
		// Abort the connection mid-body: the client sees an unexpected EOF.
		panic(http.ErrAbortHandler)
	}
	if b.limit >= 0 && int64(len(buf)) > b.limit-b.n {
		buf = buf[:b.limit-b.n]
	}
	n, err := b.body.Read(buf)
	if n > 0 && b.flip && !b.flipped && b.n+int64(n) > 100 {
		i := int64(100) - b.n
		if i < 0 {
			i = 0
		}
		buf[i] ^= 0xff
		b.flipped = true
	}
	b.n += int64(n)
	b.p.mu.Lock()
	b.p.bytes += int64(n)
	b.p.mu.Unlock()
	return n, err
}

func (b *faultyBody) Close() error { return b.body.Close() }
