package sealedlog

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/cocoon-tee/cocoon/agent/attest"
	"github.com/cocoon-tee/cocoon/agent/attest/kbstest"
	"github.com/cocoon-tee/cocoon/agent/sealedlog/evidence"
)

// The report data layout, written out byte by byte here.
func TestHeadersReportDataVector(t *testing.T) {
	msg := "cocoon sealed log headers v1\x00" + "\x02" + "\x01" + strings.Repeat("\x00", 31) + "\x02" + strings.Repeat("\x00", 31)
	got := HeadersReportData([][32]byte{{1}, {2}})
	if want := sha512.Sum512([]byte(msg)); got != want {
		t.Fatalf("report data %x, want %x", got, want)
	}
	// The same digest computed outside Go (Python hashlib over the bytes above).
	const golden = "895b69416f8bb2aa7d269d599eeaad27c74915c18769e26376ba4ff1396b884a6636394270a68265616fb53d5e062be560bfc18344f9b1d0f036e607f99e7cb1"
	if h := hex.EncodeToString(got[:]); h != golden {
		t.Fatalf("report data %s, golden %s", h, golden)
	}
	for _, other := range [][64]byte{
		HeadersReportData([][32]byte{{2}, {1}}),
		HeadersReportData([][32]byte{{1}}),
		HeadersReportData([][32]byte{{1}, {3}}),
	} {
		if other == got {
			t.Fatal("a different input gives the same report data")
		}
	}
}

// container is one attested container's two streams.
func attestedPair(t testing.TB, pub *ecdh.PublicKey, a attest.Attester, o Options) (*Sealer, *Sealer) {
	t.Helper()
	out, err := NewSealer(pub, "c1/stdout", o)
	if err != nil {
		t.Fatal(err)
	}
	errS, err := NewSealer(pub, "c1/stderr", o)
	if err != nil {
		t.Fatal(err)
	}
	if err := Attest(context.Background(), a, out, errS); err != nil {
		t.Fatal(err)
	}
	return out, errS
}

// interleaved seals output on both streams and returns the lines as
// kubectl logs shows them: stdout and stderr mixed line by line.
func interleaved(t testing.TB, out, errS *Sealer) []byte {
	t.Helper()
	o1, _ := out.Write([]byte("out one\n"))
	e1, _ := errS.Write([]byte("err one\n"))
	o2, _ := out.Write([]byte("out two\n"))
	var b []byte
	for _, part := range [][]byte{o1, e1, o2, errS.Close(), out.Close()} {
		b = append(b, part...)
	}
	return b
}

// openAll opens text and returns the plaintext and every event but Data.
func openAll(t testing.TB, priv *ecdh.PrivateKey, opt OpenerOptions, text []byte) (string, []Event) {
	t.Helper()
	o, err := NewOpenerWith(priv, opt)
	if err != nil {
		t.Fatal(err)
	}
	var plain strings.Builder
	var evs []Event
	take := func(es []Event) {
		for _, e := range es {
			if e.Kind == Data || e.Kind == Late {
				plain.Write(e.Data)
			}
			if e.Kind != Data {
				evs = append(evs, e)
			}
		}
	}
	for _, l := range lines(text) {
		take(o.Line(l))
	}
	take(o.End())
	return plain.String(), evs
}

// attestedStreams returns stream name -> tee of the Attested events, and
// the streams reported NotAttested.
func attestedStreams(evs []Event) (map[string]string, []string) {
	att := map[string]string{}
	var not []string
	for _, e := range evs {
		switch e.Kind {
		case Attested:
			att[strings.SplitN(e.Stream, "#", 2)[0]] = e.Tee
		case NotAttested:
			not = append(not, strings.SplitN(e.Stream, "#", 2)[0])
		}
	}
	return att, not
}

func problems(evs []Event) []Event {
	var ps []Event
	for _, e := range evs {
		if e.Problem() {
			ps = append(ps, e)
		}
	}
	return ps
}

// Each TEE's evidence binds both streams of the container; the opener
// checks it and reports both attested, and the line fits a CRI log line.
func TestAttestedStreams(t *testing.T) {
	priv := newKey(t, ecdh.X25519())
	for name, a := range map[string]attest.Attester{"sample": attest.Sample{}, "snp": kbstest.SNPAttester(t), "tdx": kbstest.TDXAttester(t)} {
		t.Run(name, func(t *testing.T) {
			out, errS := attestedPair(t, priv.PublicKey(), a, Options{})
			text := interleaved(t, out, errS)
			for _, l := range lines(text) {
				if bytes.HasPrefix(l, []byte(AttestPrefix)) && len(l)+1 > MaxAttestLine {
					t.Fatalf("attestation line of %d bytes", len(l)+1)
				}
			}
			for _, l := range lines(text) {
				if bytes.HasPrefix(l, []byte(AttestPrefix)) {
					t.Logf("%s attestation line: %d bytes", name, len(l)+1)
					break
				}
			}
			if n := bytes.Count(text, []byte(AttestPrefix)); n != 2 {
				t.Fatalf("%d attestation lines, want one after each stream's header", n)
			}
			plain, evs := openAll(t, priv, OpenerOptions{RequireEvidence: true, AllowSample: true}, text)
			att, not := attestedStreams(evs)
			if att["c1/stdout"] != name || att["c1/stderr"] != name || len(not) != 0 {
				t.Fatalf("attested %v, not attested %v", att, not)
			}
			if plain != "out one\nerr one\nout two\n" || len(problems(evs)) != 0 {
				t.Fatalf("opened %q, problems %+v", plain, problems(evs))
			}
			for _, e := range evs {
				if e.Kind == Attested {
					rd, err := evidence.ReportData(e.Tee, e.Evidence)
					if err != nil || len(rd) != 64 {
						t.Fatalf("the event's evidence: %v", err)
					}
				}
			}
		})
	}
}

// The attestation follows every copy of the header, so output read from
// the middle (after log rotation, with --tail) is attested too.
func TestAttestationFollowsEveryHeader(t *testing.T) {
	priv := newKey(t, ecdh.X25519())
	out, errS := attestedPair(t, priv.PublicKey(), attest.Sample{}, Options{HeaderEvery: 4 << 10, MaxRecord: 1 << 10})
	var text []byte
	for range 40 {
		b, _ := out.Write([]byte(strings.Repeat("x", 1000) + "\n"))
		text = append(text, b...)
	}
	text = append(text, out.Close()...)
	ls := lines(text)
	headers := 0
	for i, l := range ls {
		if bytes.HasPrefix(l, []byte(HeaderPrefix)) {
			headers++
			if i+1 >= len(ls) || !bytes.HasPrefix(ls[i+1], []byte(AttestPrefix)) {
				t.Fatalf("header %d is not followed by the attestation", headers)
			}
		}
	}
	if headers < 5 {
		t.Fatalf("%d headers; the test wants repeats", headers)
	}
	// From the middle: records before the repeated header are held and
	// shown once the stream is attested.
	mid := bytes.Join(ls[len(ls)/2:], []byte("\n"))
	plain, evs := openAll(t, priv, OpenerOptions{RequireEvidence: true, AllowSample: true}, mid)
	if att, _ := attestedStreams(evs); att["c1/stdout"] != "sample" || len(problems(evs)) != 0 || !strings.HasSuffix(plain, "x\n") {
		t.Fatalf("from the middle: attested %v, problems %+v", att, problems(evs))
	}
	_ = errS
}

// A stream the host made with the owner's public key is not attested:
// without evidence, with a genuine attestation line copied next to it, or
// with an attestation naming its header but carrying evidence made for
// other headers. RequireEvidence shows none of its records.
func TestForgedStreamNotAttested(t *testing.T) {
	priv := newKey(t, ecdh.X25519())
	out, errS := attestedPair(t, priv.PublicKey(), kbstest.SNPAttester(t), Options{})
	genuine := interleaved(t, out, errS)
	var genuineAtt []byte
	for _, l := range lines(genuine) {
		if bytes.HasPrefix(l, []byte(AttestPrefix)) {
			genuineAtt = append(bytes.Clone(l), '\n')
			break
		}
	}
	forged := seal(t, priv.PublicKey(), Options{}, "FORGED by the host\n")
	fh, _ := HeaderDigest(lines(forged)[0])

	// The genuine attestation with the forged header's digest in place of
	// the genuine stdout's: the evidence's report data no longer matches.
	at, _, err := ParseAttestation(genuineAtt)
	if err != nil {
		t.Fatal(err)
	}
	at.Headers[0] = base64.RawURLEncoding.EncodeToString(fh[:])
	js, _ := json.Marshal(at)
	relabelled := line(nil, AttestPrefix, js)

	for name, text := range map[string][]byte{
		"no evidence":          forged,
		"genuine line copied":  append(bytes.Clone(genuineAtt), forged...),
		"evidence for another": append(bytes.Clone(relabelled), forged...),
	} {
		t.Run(name, func(t *testing.T) {
			plain, evs := openAll(t, priv, OpenerOptions{}, text)
			if att, not := attestedStreams(evs); len(att) != 0 || len(not) != 1 {
				t.Fatalf("attested %v, not attested %v", att, not)
			}
			if !strings.Contains(plain, "FORGED") {
				t.Fatalf("without RequireEvidence the stream opens (marked): %q", plain)
			}
			plain, evs = openAll(t, priv, OpenerOptions{RequireEvidence: true, AllowSample: true}, text)
			if strings.Contains(plain, "FORGED") {
				t.Fatal("RequireEvidence showed an unattested stream")
			}
			found := false
			for _, e := range problems(evs) {
				found = found || (e.Kind == Rejected && strings.Contains(e.Reason, "no evidence from the agent attests this stream"))
			}
			if !found {
				t.Fatalf("no rejection of the unattested stream: %+v", evs)
			}
			if name == "evidence for another" && !hasReason(evs, "attestation: the evidence carries other report data") {
				t.Fatalf("the relabelled attestation is not rejected: %+v", evs)
			}
		})
	}
}

func hasReason(evs []Event, s string) bool {
	for _, e := range evs {
		if e.Kind == Rejected && strings.Contains(e.Reason, s) {
			return true
		}
	}
	return false
}

// Sample evidence, which anyone can make, is reported as such; it does
// not satisfy RequireEvidence unless allowed, and a sample attestation the
// host sends first does not hide the TEE's that follows.
func TestSampleEvidence(t *testing.T) {
	priv := newKey(t, ecdh.X25519())
	out, errS := attestedPair(t, priv.PublicKey(), attest.Sample{}, Options{})
	text := interleaved(t, out, errS)
	plain, evs := openAll(t, priv, OpenerOptions{RequireEvidence: true}, text)
	if plain != "" || !hasReason(evs, "sample attester") {
		t.Fatalf("sample evidence without AllowSample: %q %+v", plain, evs)
	}

	out, errS = attestedPair(t, priv.PublicKey(), kbstest.SNPAttester(t), Options{})
	text = interleaved(t, out, errS)
	d, _ := HeaderDigest(out.Header())
	rd := HeadersReportData([][32]byte{d})
	ev, _ := attest.Sample{}.Evidence(context.Background(), rd[:])
	js, _ := json.Marshal(Attestation{Tee: "sample", Headers: []string{base64.RawURLEncoding.EncodeToString(d[:])}, Evidence: ev})
	downgrade := append(line(nil, AttestPrefix, js), text...)
	plain, evs = openAll(t, priv, OpenerOptions{RequireEvidence: true}, downgrade)
	att, _ := attestedStreams(evs)
	if att["c1/stdout"] != "snp" || plain != "out one\nerr one\nout two\n" || len(problems(evs)) != 0 {
		t.Fatalf("host's sample attestation first: attested %v, %q, problems %+v", att, plain, problems(evs))
	}
}

// Streams of agents that do not attest (the golden vectors, older agents)
// still open, reported NotAttested; the attestation must come before the
// first record; an attester's failure is Attest's error.
func TestUnattestedAndAttestErrors(t *testing.T) {
	priv := newKey(t, ecdh.X25519())
	old := seal(t, priv.PublicKey(), Options{}, "old\n")
	plain, evs := openAll(t, priv, OpenerOptions{}, old)
	if _, not := attestedStreams(evs); plain != "old\n" || len(not) != 1 || len(problems(evs)) != 0 {
		t.Fatalf("unattested stream: %q %+v", plain, evs)
	}

	s, _ := NewSealer(priv.PublicKey(), "c/stdout", Options{})
	s.Write([]byte("first\n"))
	if err := Attest(context.Background(), attest.Sample{}, s); !errors.Is(err, errAttestLate) {
		t.Fatalf("attest after the first record: %v", err)
	}
	s, _ = NewSealer(priv.PublicKey(), "c/stdout", Options{})
	if err := Attest(context.Background(), failing{}, s); err == nil || !strings.Contains(err.Error(), "quote service withheld") {
		t.Fatalf("failing attester: %v", err)
	}
	if b, _ := s.Write([]byte("x\n")); bytes.Contains(b, []byte(AttestPrefix)) {
		t.Fatal("a failed attestation left a line")
	}
}

// Sample attestations are anyone's to make: an input naming endless
// digests is refused past a bound, not remembered.
func TestAttestationFlood(t *testing.T) {
	priv := newKey(t, ecdh.X25519())
	o, err := NewOpener(priv)
	if err != nil {
		t.Fatal(err)
	}
	rejected := 0
	for i := range maxAttests/MaxAttestHeaders + 2 {
		var ds [][32]byte
		var hs []string
		for j := range MaxAttestHeaders {
			d := sha512.Sum512_256([]byte{byte(i), byte(i >> 8), byte(j)})
			ds = append(ds, d)
			hs = append(hs, base64.RawURLEncoding.EncodeToString(d[:]))
		}
		rd := HeadersReportData(ds)
		ev, _ := attest.Sample{}.Evidence(context.Background(), rd[:])
		js, _ := json.Marshal(Attestation{Tee: "sample", Headers: hs, Evidence: ev})
		for _, e := range o.Line(line(nil, AttestPrefix, js)) {
			if e.Kind == Rejected && strings.Contains(e.Reason, "attested headers in the input") {
				rejected++
			}
		}
	}
	if rejected == 0 || len(o.attests) > maxAttests {
		t.Fatalf("%d rejected, %d remembered", rejected, len(o.attests))
	}
}

type failing struct{}

func (failing) Tee() string { return attest.TeeTDX }
func (failing) Evidence(context.Context, []byte) (json.RawMessage, error) {
	return nil, errors.New("quote service withheld the quote")
}

// Malformed attestation lines are rejected with a reason, never a panic.
func TestParseAttestationRefuses(t *testing.T) {
	enc := func(s string) []byte { return line(nil, AttestPrefix, []byte(s)) }
	d := base64.RawURLEncoding.EncodeToString(make([]byte, 32))
	for name, l := range map[string][]byte{
		"not base64":      []byte(AttestPrefix + "!!"),
		"not json":        enc("nope"),
		"unknown field":   enc(`{"tee":"sample","headers":["` + d + `"],"evidence":{},"x":1}`),
		"unknown tee":     enc(`{"tee":"sgx","headers":["` + d + `"],"evidence":{}}`),
		"no headers":      enc(`{"tee":"sample","headers":[],"evidence":{}}`),
		"short digest":    enc(`{"tee":"sample","headers":["AAAA"],"evidence":{}}`),
		"repeated digest": enc(`{"tee":"sample","headers":["` + d + `","` + d + `"],"evidence":{}}`),
		"evidence array":  enc(`{"tee":"sample","headers":["` + d + `"],"evidence":[]}`),
		"trailing data":   enc(`{"tee":"sample","headers":["` + d + `"],"evidence":{}} {}`),
		"too long":        enc(`{"tee":"sample","headers":["` + d + `"],"evidence":{"x":"` + strings.Repeat("a", MaxAttestLine) + `"}}`),
	} {
		if _, _, err := ParseAttestation(l); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzParseAttestation(f *testing.F) {
	priv, _ := ecdh.X25519().NewPrivateKey(bytes.Repeat([]byte{7}, 32))
	s, _ := NewSealer(priv.PublicKey(), "c/stdout", Options{})
	if err := Attest(context.Background(), attest.Sample{}, s); err != nil {
		f.Fatal(err)
	}
	b, _ := s.Write([]byte("x\n"))
	for _, l := range lines(b) {
		f.Add(l)
	}
	f.Add([]byte(AttestPrefix))
	f.Fuzz(func(t *testing.T, l []byte) {
		at, ds, err := ParseAttestation(l)
		if err != nil {
			return
		}
		if len(ds) != len(at.Headers) || len(ds) == 0 || !evidence.Known(at.Tee) {
			t.Fatalf("accepted %+v with %d digests", at, len(ds))
		}
		_ = CheckAttestation(at, ds)
		o, _ := NewOpenerWith(priv, OpenerOptions{RequireEvidence: true})
		o.Line(l)
		o.End()
	})
}

// What one evidence costs next to the sealing set-up a container needs
// anyway (two HPKE senders), with the sample attester and the fakes of
// SNP and TDX hardware. The fakes do not cost what hardware does (an SNP
// report is a round trip to the PSP, a TDX quote one to the host's
// quoting service); one evidence per container keeps it to one call.
func BenchmarkAttest(b *testing.B) {
	priv, _ := ecdh.X25519().NewPrivateKey(bytes.Repeat([]byte{7}, 32))
	b.Run("two-sealers", func(b *testing.B) {
		for b.Loop() {
			NewSealer(priv.PublicKey(), "c/stdout", Options{})
			NewSealer(priv.PublicKey(), "c/stderr", Options{})
		}
	})
	rd := HeadersReportData([][32]byte{{1}, {2}})
	for name, a := range map[string]attest.Attester{"sample": attest.Sample{}, "fake-snp": kbstest.SNPAttester(b), "fake-tdx": kbstest.TDXAttester(b)} {
		b.Run("evidence-"+name, func(b *testing.B) {
			for b.Loop() {
				if _, err := evidence.Make(context.Background(), a, rd[:], evidence.Options{NoCertChain: true}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
