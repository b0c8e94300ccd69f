package sealedlog

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/cocoon-tee/cocoon/agent/attest"
)

func newKey(t testing.TB, c ecdh.Curve) *ecdh.PrivateKey {
	k, err := c.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// lines splits sealed output into its lines, each with its newline.
func lines(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		out = append(out, b[:i+1])
		b = b[i+1:]
	}
	return out
}

// readAll runs every line through an opener and returns the recovered
// bytes and the events other than Data and NotAttested (the streams here
// are not attested; attest_test.go checks attestation).
func readAll(t testing.TB, priv *ecdh.PrivateKey, ls [][]byte) ([]byte, []Event) {
	o, err := NewOpener(priv)
	if err != nil {
		t.Fatal(err)
	}
	var plain []byte
	var evs []Event
	take := func(es []Event) {
		for _, e := range es {
			if e.Kind == Data || e.Kind == Late {
				plain = append(plain, e.Data...)
			}
			if e.Kind != Data && e.Kind != NotAttested {
				evs = append(evs, e)
			}
		}
	}
	for _, l := range ls {
		take(o.Line(l))
	}
	take(o.End())
	return plain, evs
}

func kinds(evs []Event) string {
	var s []string
	for _, e := range evs {
		s = append(s, fmt.Sprintf("%s %d-%d", kindName[e.Kind], e.First, e.Last))
	}
	return strings.Join(s, ", ")
}

var kindName = map[Kind]string{Data: "data", Late: "late", NewStream: "new", StartsLate: "startslate", Missing: "missing",
	Replayed: "replayed", Closed: "closed", NotClosed: "notclosed", Rejected: "rejected", Unsealed: "unsealed",
	Attested: "attested", NotAttested: "notattested"}

// seal writes chunks through a new sealer and closes it.
func seal(t testing.TB, pub *ecdh.PublicKey, o Options, chunks ...string) []byte {
	s, err := NewSealer(pub, "c1/stdout", o)
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	for _, c := range chunks {
		b, err := s.Write([]byte(c))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b...)
	}
	return append(out, s.Close()...)
}

func TestRoundTripRandomWrites(t *testing.T) {
	for _, curve := range []ecdh.Curve{ecdh.X25519(), ecdh.P256()} {
		priv := newKey(t, curve)
		r := mrand.New(mrand.NewPCG(1, 2))
		var want, sealed []byte
		s, err := NewSealer(priv.PublicKey(), "c1/stdout", Options{HeaderEvery: 64 << 10})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 2000 {
			n := r.IntN(40 << 10)
			if i%3 == 0 {
				n = r.IntN(100)
			}
			p := make([]byte, n)
			for j := range p {
				p[j] = "abc \n\x00\xff"[r.IntN(7)]
			}
			if i%7 == 0 { // a long line without newlines
				p = bytes.ReplaceAll(p, []byte("\n"), []byte("x"))
			}
			want = append(want, p...)
			out, err := s.Write(p)
			if err != nil {
				t.Fatal(err)
			}
			sealed = append(sealed, out...)
			if i%11 == 0 {
				sealed = append(sealed, s.Flush()...)
			}
		}
		sealed = append(sealed, s.Close()...)
		if _, err := s.Write([]byte("x")); err != ErrClosed {
			t.Fatalf("write after close: %v", err)
		}
		ls := lines(sealed)
		for _, l := range ls {
			if len(l) > 12<<10 || !bytes.HasPrefix(l, []byte(linePrefix)) {
				t.Fatalf("line of %d bytes: %.40q", len(l), l)
			}
		}
		got, evs := readAll(t, priv, ls)
		if !bytes.Equal(got, want) {
			t.Fatalf("%v: recovered %d bytes, want %d", curve, len(got), len(want))
		}
		if k := kinds(evs); !strings.HasPrefix(k, "new 0-0, closed ") || strings.Count(k, ",") != 1 {
			t.Fatalf("events: %s", k)
		}
	}
}

// TestLineBuffering: complete lines go out at once, a partial line waits
// for its newline, for a full record or for Flush.
func TestLineBuffering(t *testing.T) {
	priv := newKey(t, ecdh.X25519())
	s, err := NewSealer(priv.PublicKey(), "c1/stdout", Options{MaxRecord: 16})
	if err != nil {
		t.Fatal(err)
	}
	if out, _ := s.Write([]byte("one\ntw")); len(lines(out)) != 2 || s.Pending() != 2 {
		t.Fatalf("header+record expected, pending 2: %q pending %d", out, s.Pending())
	}
	if out, _ := s.Write([]byte("o")); out != nil || s.Pending() != 3 {
		t.Fatalf("partial line sealed early: %q", out)
	}
	if out, _ := s.Write([]byte("\nthree")); len(lines(out)) != 1 || s.Pending() != 5 {
		t.Fatalf("completed line: %q pending %d", out, s.Pending())
	}
	if out := s.Flush(); len(lines(out)) != 1 || s.Pending() != 0 {
		t.Fatalf("flush: %q", out)
	}
	if out, _ := s.Write([]byte(strings.Repeat("x", 40))); len(lines(out)) != 2 || s.Pending() != 8 {
		t.Fatalf("long line: %d records, pending %d", len(lines(out)), s.Pending())
	}
}

// tamper cases: each changes the sealed lines as the host could.
func TestDropReplayReorderTamper(t *testing.T) {
	priv := newKey(t, ecdh.X25519())
	chunks := []string{"r0\n", "r1\n", "r2\n", "r3\n", "r4\n"}
	ls := lines(seal(t, priv.PublicKey(), Options{}, chunks...))
	// ls[0] header, ls[1..5] records 0..4, ls[6] final record 5.
	if len(ls) != 7 {
		t.Fatalf("%d lines", len(ls))
	}
	flip := func(l []byte) []byte {
		c := bytes.Clone(l)
		i := len(c) - 10
		if c[i] == 'A' {
			c[i] = 'B'
		} else {
			c[i] = 'A'
		}
		return c
	}
	cases := []struct {
		name   string
		lines  [][]byte
		plain  string
		events string
	}{
		{"intact", ls, "r0\nr1\nr2\nr3\nr4\n", "new 0-0, closed 5-5"},
		{"dropped", [][]byte{ls[0], ls[1], ls[2], ls[4], ls[5], ls[6]}, "r0\nr1\nr3\nr4\n", "new 0-0, missing 2-2, closed 5-5"},
		{"replayed", [][]byte{ls[0], ls[1], ls[2], ls[2], ls[3], ls[4], ls[5], ls[6]}, "r0\nr1\nr2\nr3\nr4\n", "new 0-0, replayed 1-1, closed 5-5"},
		{"reordered", [][]byte{ls[0], ls[1], ls[3], ls[2], ls[4], ls[5], ls[6]}, "r0\nr2\nr1\nr3\nr4\n", "new 0-0, missing 1-1, late 1-1, closed 5-5"},
		{"replayed after end", append(slices.Clone(ls), ls[3]), "r0\nr1\nr2\nr3\nr4\n", "new 0-0, closed 5-5, replayed 2-2"},
		{"edited", [][]byte{ls[0], ls[1], flip(ls[2]), ls[3], ls[4], ls[5], ls[6]}, "r0\nr2\nr3\nr4\n", "new 0-0, rejected 1-1, missing 1-1, closed 5-5"},
		{"tail cut", ls[:5], "r0\nr1\nr2\nr3\n", "new 0-0, notclosed 4-0"},
		{"head cut", append([][]byte{ls[0]}, ls[3:]...), "r2\nr3\nr4\n", "new 0-0, startslate 0-1, closed 5-5"},
		{"no header", ls[1:], "", "rejected 0-0"},
		{"host line", [][]byte{ls[0], []byte("injected by the host\n"), ls[1], ls[2], ls[3], ls[4], ls[5], ls[6]}, "r0\nr1\nr2\nr3\nr4\n", "new 0-0, unsealed 0-0, closed 5-5"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			plain, evs := readAll(t, priv, c.lines)
			if string(plain) != c.plain || kinds(evs) != c.events {
				t.Fatalf("got %q [%s], want %q [%s]", plain, kinds(evs), c.plain, c.events)
			}
		})
	}
}

// TestKubectlOutput: stdout and stderr interleaved by kubectl logs, with
// --timestamps stamps and CRLF, recover both streams.
func TestKubectlOutput(t *testing.T) {
	priv := newKey(t, ecdh.X25519())
	out := lines(seal(t, priv.PublicKey(), Options{}, "out1\n", "out2\n"))
	errs := lines(seal(t, priv.PublicKey(), Options{}, "err1\n"))
	var mixed [][]byte
	for i := range max(len(out), len(errs)) {
		for _, src := range [][][]byte{out, errs} {
			if i < len(src) {
				l := append([]byte("2026-01-02T03:04:05.123456789Z "), bytes.TrimSuffix(src[i], []byte("\n"))...)
				mixed = append(mixed, append(l, "\r\n"...))
			}
		}
	}
	plain, evs := readAll(t, priv, mixed)
	if string(plain) != "out1\nerr1\nout2\n" || kinds(evs) != "new 0-0, new 0-0, closed 1-1, closed 2-2" {
		t.Fatalf("got %q [%s]", plain, kinds(evs))
	}
}

// TestHeaderRepeat: output read from the middle (kubelet rotation,
// --tail) decrypts once the repeated header comes; records before it are
// held, not lost.
func TestHeaderRepeat(t *testing.T) {
	priv := newKey(t, ecdh.X25519())
	var chunks []string
	for i := range 50 {
		chunks = append(chunks, fmt.Sprintf("line %02d\n", i))
	}
	ls := lines(seal(t, priv.PublicKey(), Options{HeaderEvery: 500}, chunks...))
	headers := 0
	for _, l := range ls {
		if bytes.HasPrefix(l, []byte(HeaderPrefix)) {
			headers++
		}
	}
	if headers < 3 {
		t.Fatalf("header sent %d times", headers)
	}
	plain, evs := readAll(t, priv, ls[12:])
	if !strings.HasSuffix(string(plain), "line 48\nline 49\n") || !strings.HasPrefix(kinds(evs), "new 0-0, startslate 0-") {
		t.Fatalf("got %q [%s]", plain, kinds(evs))
	}
	first := strings.SplitN(string(plain), "\n", 2)[0]
	if !strings.Contains(string(ls[12]), RecordPrefix) || first == "line 00" {
		t.Fatalf("first line %q", first)
	}
}

func TestWrongKeyAndForgedHeader(t *testing.T) {
	priv, other := newKey(t, ecdh.X25519()), newKey(t, ecdh.X25519())
	ls := lines(seal(t, priv.PublicKey(), Options{}, "secret\n"))
	plain, evs := readAll(t, other, ls)
	if len(plain) != 0 || !strings.HasPrefix(kinds(evs), "rejected") || !strings.Contains(evs[0].Reason, "sealed to key") {
		t.Fatalf("other key: %q [%s] %+v", plain, kinds(evs), evs)
	}
	// The host makes its own header for the genuine stream id: the first
	// header wins, the second is rejected.
	h, err := parseHeader(mustDecode(t, ls[0], HeaderPrefix))
	if err != nil {
		t.Fatal(err)
	}
	h.enc = other.PublicKey().Bytes()
	forged := line(nil, HeaderPrefix, h.marshal())
	plain, evs = readAll(t, priv, [][]byte{ls[0], forged, ls[1], ls[2]})
	if string(plain) != "secret\n" || kinds(evs) != "new 0-0, rejected 0-0, closed 1-1" {
		t.Fatalf("forged header: %q [%s]", plain, kinds(evs))
	}
}

func mustDecode(t *testing.T, l []byte, prefix string) []byte {
	b, err := decodeLine(l, prefix)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func FuzzOpenerLine(f *testing.F) {
	priv, err := ecdh.X25519().NewPrivateKey(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		f.Fatal(err)
	}
	sealed := seal(f, priv.PublicKey(), Options{}, "a\n", "b")
	for _, l := range lines(sealed) {
		f.Add(l)
	}
	f.Add([]byte(HeaderPrefix))
	f.Add([]byte(RecordPrefix + "AAAA"))
	f.Add([]byte("2026-01-01T00:00:00Z " + linePrefix + "x:"))
	as, _ := NewSealer(priv.PublicKey(), "c/stderr", Options{})
	if err := Attest(context.Background(), attest.Sample{}, as); err != nil {
		f.Fatal(err)
	}
	attested, _ := as.Write([]byte("c\n"))
	for _, l := range lines(attested) {
		f.Add(l)
	}
	hdr := lines(sealed)[0]
	f.Fuzz(func(t *testing.T, l []byte) {
		o, err := NewOpener(priv)
		if err != nil {
			t.Fatal(err)
		}
		o.Line(hdr)
		for _, e := range o.Line(l) {
			if (e.Kind == Data || e.Kind == Late) && !bytes.Equal(e.Data, []byte("a\n")) && !bytes.Equal(e.Data, []byte("b")) {
				t.Fatalf("forged plaintext %q", e.Data)
			}
		}
		o.End()
	})
}

// BenchmarkSealer32K seals 32 KiB writes of log-like text, the size of the
// runtime's ReadStdout reads.
func BenchmarkSealer32K(b *testing.B) {
	priv := newKey(b, ecdh.X25519())
	s, err := NewSealer(priv.PublicKey(), "c1/stdout", Options{})
	if err != nil {
		b.Fatal(err)
	}
	logLine := []byte("2026-01-02T03:04:05Z level=info msg=\"request served\" status=200 bytes=5123\n")
	p := bytes.Repeat(logLine, 32<<10/len(logLine)+1)[:32<<10]
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Write(p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpener32K is the owner's side, for reference.
func BenchmarkOpener32K(b *testing.B) {
	priv := newKey(b, ecdh.X25519())
	p := bytes.Repeat([]byte("x"), 32<<10)
	ls := lines(seal(b, priv.PublicKey(), Options{}, string(p)))
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		readAll(b, priv, ls)
	}
}
