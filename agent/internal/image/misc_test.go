package image

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"go.podman.io/image/v5/types"

	"github.com/cocoon-tee/cocoon/agent/internal/image/layerstore"
	"github.com/cocoon-tee/cocoon/internal/testutil/testregistry"
)

func TestZstdLayers(t *testing.T) {
	f := newFixture(t)
	ref := f.reg.Push(t, f.build("bb", testregistry.Files(map[string]string{"z": "zstd"})), "zstd:1", nil, "--dest-compress-format", "zstd")
	im, err := f.puller().Pull(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	defer im.Release()
	if b, _ := os.ReadFile(filepath.Join(im.Layers[1], "z")); string(b) != "zstd" {
		t.Errorf("zstd layer content %q", b)
	}
}

// memKeys is an in-memory KeyResolver standing in for the KBS.
type memKeys map[string][]byte

func (m memKeys) ResolveKey(_ context.Context, kid string) ([]byte, error) {
	k, ok := m[kid]
	if !ok {
		return nil, fmt.Errorf("key %s: %w", kid, errdefs.ErrNotFound)
	}
	return k, nil
}

// TestAttestationAgentKeyProvider encrypts a layer with ocicrypt's block
// cipher, wraps the layer key the way the CoCo key provider does (AES-256-GCM
// under a key named by a kbs:/// id) and decrypts it through KeyResolver.
func TestAttestationAgentKeyProvider(t *testing.T) {
	plain := bytes.Repeat([]byte("layer data "), 10000)
	kek := make([]byte, 32)
	_, _ = rand.Read(kek)
	enc, ann := testregistry.EncryptForKeyProvider(t, plain, kek, "kbs:///default/key/1")
	info := types.BlobInfo{MediaType: "application/vnd.oci.image.layer.v1.tar+encrypted", Annotations: ann}

	s, err := layerstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mk := func(kr KeyResolver) *Puller {
		p, err := New(context.Background(), Options{Store: s, KeyResolver: kr})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	open := func(kr KeyResolver) (io.Reader, error) {
		opts, err := mk(kr).layerKey(context.Background(), info)
		if err != nil {
			return nil, err
		}
		return decryptLayer(bytes.NewReader(enc), opts)
	}
	r, err := open(memKeys{"kbs:///default/key/1": kek})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("decrypted %d bytes, err %v", len(got), err)
	}

	wrong := make([]byte, 32)
	for name, kr := range map[string]KeyResolver{"wrong key": memKeys{"kbs:///default/key/1": wrong}, "unknown kid": memKeys{}, "no resolver": nil} {
		if _, err := open(kr); !errors.Is(err, errDecrypt) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Tampered ciphertext fails the HMAC at the end of the stream.
	enc[len(enc)/2] ^= 1
	r, err = open(memKeys{"kbs:///default/key/1": kek})
	if err == nil {
		_, err = io.ReadAll(r)
	}
	if err == nil {
		t.Error("tampered encrypted layer decrypted without error")
	}
}

func TestParseAAAnnotationErrors(t *testing.T) {
	for name, v := range map[string]string{
		"not base64": "%%%",
		"not json":   base64.StdEncoding.EncodeToString([]byte("{")),
		"no kid":     base64.StdEncoding.EncodeToString([]byte(`{"wrapped_data":"AA==","iv":"AA=="}`)),
		"wrap type":  base64.StdEncoding.EncodeToString([]byte(`{"kid":"k","wrapped_data":"AA==","iv":"AA==","wrap_type":"A128CBC"}`)),
		"too large":  strings.Repeat("A", maxAnnotation+4),
	} {
		if _, err := ParseAAAnnotation(v); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestParseDriverOptions(t *testing.T) {
	meta, err := ParseDriverOptions([]string{"other=1", `image_guest_pull={"metadata":{"io.kubernetes.cri.container-type":"sandbox"}}`})
	if err != nil || !isSandbox(meta) {
		t.Fatalf("%v %v", meta, err)
	}
	for name, opts := range map[string][]string{
		"missing":   {"x=y"},
		"bad json":  {`image_guest_pull={"metadata":`},
		"bad value": {`image_guest_pull={"metadata":{"a":1}}`},
		"huge":      {"image_guest_pull=" + strings.Repeat(" ", maxDriverOptBytes)},
		"too many":  make([]string, maxDriverOptions+1),
	} {
		if _, err := ParseDriverOptions(opts); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzParseDriverOptions(f *testing.F) {
	f.Add(`image_guest_pull={"metadata":{"a":"b"}}`, "x=y")
	f.Add(`image_guest_pull=null`, "")
	f.Fuzz(func(t *testing.T, a, b string) {
		meta, err := ParseDriverOptions([]string{a, b})
		if err == nil && meta == nil {
			t.Fatal("nil metadata without error")
		}
		if err != nil && !errdefs.IsInvalidArgument(err) {
			t.Fatalf("unclassified error %v", err)
		}
	})
}

func FuzzParseAAAnnotation(f *testing.F) {
	f.Add(base64.StdEncoding.EncodeToString([]byte(`{"kid":"kbs:///a/b/c","wrapped_data":"AA==","iv":"AAAAAAAAAAAAAAAA","wrap_type":"A256GCM"}`)))
	f.Fuzz(func(t *testing.T, v string) {
		anns, err := ParseAAAnnotation(v)
		if err != nil {
			return
		}
		for _, a := range anns {
			_, _ = a.Unwrap(make([]byte, 32))
		}
	})
}
