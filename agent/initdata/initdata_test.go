package initdata_test

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/cocoon-tee/cocoon/agent/initdata"
)

const policyText = "package agent_policy\n\ndefault ExecProcessRequest := false\n# quotes ' \" and ''' inside\n"

func TestCreateImageRoundTrip(t *testing.T) {
	for _, alg := range []string{"sha256", "sha384", "sha512"} {
		d, err := initdata.Create(alg, map[string]string{initdata.KeyPolicy: policyText, initdata.KeyCDH: "x = 'y'\n", "weird": "tab\there\x01"})
		if err != nil {
			t.Fatal(err)
		}
		var want []byte
		switch alg {
		case "sha256":
			s := sha256.Sum256(d.Raw)
			want = s[:]
		case "sha384":
			s := sha512.Sum384(d.Raw)
			want = s[:]
		case "sha512":
			s := sha512.Sum512(d.Raw)
			want = s[:]
		}
		if !bytes.Equal(d.Digest, want) {
			t.Fatalf("%s: digest is not over the exact TOML bytes", alg)
		}
		img, err := initdata.Image(d.Raw)
		if err != nil {
			t.Fatal(err)
		}
		if len(img)%512 != 0 || string(img[:8]) != "initdata" {
			t.Fatalf("image layout: len %d magic %q", len(img), img[:8])
		}
		back, err := initdata.ParseImage(img)
		if err != nil {
			t.Fatal(err)
		}
		if p, _ := back.Policy(); p != policyText || !bytes.Equal(back.Digest, d.Digest) || back.Data["weird"] != "tab\there\x01" {
			t.Fatalf("round trip: %+v", back.Data)
		}
		ann, err := initdata.Annotation(d.Raw)
		if err != nil {
			t.Fatal(err)
		}
		fromAnn, err := initdata.ParseAnnotation(ann)
		if err != nil || !bytes.Equal(fromAnn.Raw, d.Raw) {
			t.Fatalf("annotation round trip: %v", err)
		}
	}
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func image(magic string, n uint64, payload []byte) []byte {
	b := append([]byte(magic), make([]byte, 8)...)
	binary.LittleEndian.PutUint64(b[8:], n)
	return append(b, payload...)
}

func TestBadInput(t *testing.T) {
	good := []byte("version = \"0.1.0\"\nalgorithm = \"sha256\"\n[data]\n\"policy.rego\" = \"x\"\n")
	z := gz(good)
	for _, tc := range []struct {
		name string
		img  []byte
		want string
	}{
		{"bad magic", image("initdatX", uint64(len(z)), z), "bad magic"},
		{"short header", []byte("initdata"), "header"},
		{"zero length", image("initdata", 0, z), "out of range"},
		{"oversized length", image("initdata", 1<<40, z), "out of range"},
		{"truncated gzip", image("initdata", uint64(len(z)), z[:len(z)/2]), "truncated"},
		{"truncated gzip stream", image("initdata", uint64(len(z)/2), z[:len(z)/2]), "invalid gzip"},
		{"not gzip", image("initdata", 5, []byte("hello")), "invalid gzip"},
		{"invalid TOML", image("initdata", 0, nil), ""},
		{"unknown algorithm", nil, "unsupported initdata algorithm"},
		{"bad version", nil, "unsupported version"},
		{"missing algorithm", nil, "missing algorithm"},
		{"data not strings", nil, "invalid TOML"},
	} {
		switch tc.name {
		case "invalid TOML":
			p := gz([]byte("version = \n"))
			tc.img, tc.want = image("initdata", uint64(len(p)), p), "invalid TOML"
		case "unknown algorithm":
			p := gz([]byte("version = \"0.1.0\"\nalgorithm = \"md5\"\n"))
			tc.img = image("initdata", uint64(len(p)), p)
		case "bad version":
			p := gz([]byte("version = \"9\"\nalgorithm = \"sha256\"\n"))
			tc.img = image("initdata", uint64(len(p)), p)
		case "missing algorithm":
			p := gz([]byte("version = \"0.1.0\"\n"))
			tc.img = image("initdata", uint64(len(p)), p)
		case "data not strings":
			p := gz([]byte("version = \"0.1.0\"\nalgorithm = \"sha256\"\n[data]\nx = 1\n"))
			tc.img = image("initdata", uint64(len(p)), p)
		}
		_, err := initdata.ParseImage(tc.img)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want error containing %q", tc.name, err, tc.want)
		}
	}
	// A gzip bomb is cut off at MaxTOML.
	bomb := gz(bytes.Repeat([]byte("#"), initdata.MaxTOML+10))
	if _, err := initdata.ParseImage(image("initdata", uint64(len(bomb)), bomb)); err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Errorf("oversized document: %v", err)
	}
}

func TestBound(t *testing.T) {
	d, err := initdata.Create("sha512", nil)
	if err != nil {
		t.Fatal(err)
	}
	if b := d.Bound(32); !bytes.Equal(b, d.Digest[:32]) {
		t.Error("truncation")
	}
	d, _ = initdata.Create("sha256", nil)
	if b := d.Bound(48); !bytes.Equal(b[:32], d.Digest) || !bytes.Equal(b[32:], make([]byte, 16)) {
		t.Error("padding")
	}
}

func FuzzParseImage(f *testing.F) {
	d, _ := initdata.Create("sha256", map[string]string{"policy.rego": policyText})
	img, _ := initdata.Image(d.Raw)
	f.Add(img)
	f.Add(image("initdata", 3, []byte{1, 2, 3}))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := initdata.ParseImage(b)
		if err != nil {
			return
		}
		if len(got.Digest) == 0 || got.Version != initdata.Version {
			t.Fatalf("accepted without digest or version: %+v", got)
		}
	})
}

func FuzzParseTOML(f *testing.F) {
	f.Add([]byte("version = \"0.1.0\"\nalgorithm = \"sha384\"\n[data]\n\"a\" = '''\nx'''\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := initdata.Parse(b)
		if err != nil {
			return
		}
		// What parses re-creates to a document with the same data.
		again, err := initdata.Create(d.Algorithm, d.Data)
		if err != nil {
			t.Fatalf("re-create: %v", err)
		}
		for k, v := range d.Data {
			if again.Data[k] != v {
				t.Fatalf("key %q: %q became %q", k, v, again.Data[k])
			}
		}
	})
}
