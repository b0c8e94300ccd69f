package integration_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cocoon-tee/cocoon/agent/attest/kbstest"
	"github.com/cocoon-tee/cocoon/agent/daemon"
	"github.com/cocoon-tee/cocoon/agent/initdata"
	"github.com/cocoon-tee/cocoon/agent/internal/image"
	"github.com/cocoon-tee/cocoon/internal/testutil/testenv"
	"github.com/cocoon-tee/cocoon/internal/testutil/testregistry"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// layout is an OCI image layout on disk.
type layout struct {
	t   *testing.T
	dir string
}

func (l layout) blob(d digest.Digest) []byte {
	l.t.Helper()
	b, err := os.ReadFile(filepath.Join(l.dir, "blobs", d.Algorithm().String(), d.Encoded()))
	if err != nil {
		l.t.Fatal(err)
	}
	return b
}

func (l layout) put(b []byte) digest.Digest {
	l.t.Helper()
	d := digest.FromBytes(b)
	if err := os.WriteFile(filepath.Join(l.dir, "blobs", d.Algorithm().String(), d.Encoded()), b, 0o644); err != nil {
		l.t.Fatal(err)
	}
	return d
}

func (l layout) index() ocispec.Index {
	l.t.Helper()
	var idx ocispec.Index
	b, err := os.ReadFile(filepath.Join(l.dir, "index.json"))
	if err == nil {
		err = json.Unmarshal(b, &idx)
	}
	if err != nil {
		l.t.Fatal(err)
	}
	return idx
}

// encryptAs adds tag to the layout: the image tagged "latest" with every
// layer encrypted by ocicrypt's layer block cipher, the layer's private
// cipher options sealed with AES-256-GCM under kek, and the key named by kid
// in the attestation-agent key-provider annotation — what CoCo's key
// provider writes, which skopeo itself cannot produce.
func (l layout) encryptAs(tag, kid string, kek []byte) {
	t := l.t
	t.Helper()
	idx := l.index()
	var src *ocispec.Descriptor
	for i, m := range idx.Manifests {
		if m.Annotations[ocispec.AnnotationRefName] == "latest" {
			src = &idx.Manifests[i]
		}
	}
	if src == nil {
		t.Fatal("layout has no latest image")
	}
	var man ocispec.Manifest
	if err := json.Unmarshal(l.blob(src.Digest), &man); err != nil {
		t.Fatal(err)
	}
	for i, ld := range man.Layers {
		enc, ann := testregistry.EncryptForKeyProvider(t, l.blob(ld.Digest), kek, kid)
		man.Layers[i] = ocispec.Descriptor{
			MediaType:   ld.MediaType + "+encrypted",
			Digest:      l.put(enc),
			Size:        int64(len(enc)),
			Annotations: ann,
		}
	}
	mb, _ := json.Marshal(man)
	d := *src
	d.Digest, d.Size = l.put(mb), int64(len(mb))
	d.Annotations = map[string]string{ocispec.AnnotationRefName: tag}
	idx.Manifests = append(idx.Manifests, d)
	ib, _ := json.Marshal(idx)
	if err := os.WriteFile(filepath.Join(l.dir, "index.json"), ib, 0o644); err != nil {
		t.Fatal(err)
	}
}

// An image whose layers are encrypted for the KBS key-provider runs end to
// end: the agent attests (sample attester, no TEE here), the test KBS
// releases the key named in the layer annotation, the layer is decrypted,
// checked against its diff_id and unpacked, and the container runs the
// image's command, with the sealed secret of the image's ENV unsealed. A
// key the KBS withholds (404, 403) refuses the container
// with a clear error and nothing is stored.
func TestEncryptedImageKeyFromKBS(t *testing.T) {
	testenv.RequiresRoot(t)
	reg := testregistry.Start(t)
	dir := t.TempDir()
	src := testregistry.Build(t, dir, []string{"sh", "-c", "cat /msg; echo \" $COCOON_TEST $SECRET\""}, func(t testing.TB, rootfs string) {
		testenv.BusyboxRootfs(t, rootfs)
		if err := os.WriteFile(filepath.Join(rootfs, "msg"), []byte("from the encrypted image"), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	l := layout{t: t, dir: filepath.Join(dir, "oci")}
	if !strings.HasPrefix(src, "oci:"+l.dir) {
		t.Fatalf("unexpected layout reference %s", src)
	}
	// The image's own ENV carries a sealed secret: it is unsealed after the
	// image config is merged into the spec.
	sealKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sealPub, _ := jose.JSONWebKey{Key: &sealKey.PublicKey}.MarshalJSON()
	testregistry.Run(t, nil, "umoci", "config", "--image", l.dir+":latest",
		"--config.env", "SECRET="+seal(t, sealKey, "kbs:///default/sealing/pub", "kbs:///default/secret/img"))
	kek1, kek2, kek3 := make([]byte, 32), make([]byte, 32), make([]byte, 32)
	for _, k := range [][]byte{kek1, kek2, kek3} {
		_, _ = rand.Read(k)
	}
	refs := map[string]string{}
	for tag, kid := range map[string]string{"released": "kbs:///default/key/1", "unknown": "kbs:///default/key/2", "forbidden": "kbs:///default/key/3"} {
		kek := map[string][]byte{"released": kek1, "unknown": kek2, "forbidden": kek3}[tag]
		l.encryptAs(tag, kid, kek)
		refs[tag] = reg.Push(t, "oci:"+l.dir+":"+tag, "enc/app:"+tag, nil)
	}

	kbs, err := kbstest.New(kbstest.Options{Resources: map[string][]byte{
		"default/key/1":       kek1,
		"default/key/3":       kek3,
		"default/sealing/pub": sealPub,
		"default/secret/img":  []byte("unsealed"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kbs.Close)
	regConf := filepath.Join(dir, "registries.conf")
	if err := os.WriteFile(regConf, []byte(fmt.Sprintf("[[registry]]\nlocation = %q\ninsecure = true\n", reg.Addr)), 0o600); err != nil {
		t.Fatal(err)
	}
	id, err := initdata.Create("sha256", map[string]string{
		initdata.KeyAA:  fmt.Sprintf("[token_configs.kbs]\nurl = %q\n", kbs.URL),
		initdata.KeyCDH: fmt.Sprintf("[image]\nregistry_configuration_uri = %q\n", "file://"+regConf),
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := baseConfig(t)
	cfg.AttestSample = true
	writeInitdata(t, &cfg, id)
	a := start(t, cfg, daemon.Options{})
	ctx := ctxT(t)

	create := func(cid, ref string) error {
		mp := filepath.Join(cfg.KataRunDir, cid, "rootfs")
		_, err := a.CreateContainer(ctx, &agentpb.CreateContainerRequest{
			ContainerId: cid, ExecId: cid,
			OCI: spec(mp, nil), // no args: the image's command runs
			Storages: []*agentpb.Storage{{
				Driver:        "image_guest_pull",
				Source:        ref,
				DriverOptions: []string{`image_guest_pull={"metadata":{"io.kubernetes.cri.container-type":"container"}}`},
				MountPoint:    mp,
			}},
		})
		return err
	}
	storeEmpty := func(t *testing.T, cid string) {
		t.Helper()
		if ents, err := os.ReadDir(filepath.Join(cfg.KataRunDir, cid, "rootfs")); err == nil && len(ents) > 0 {
			t.Errorf("refused container's rootfs holds %d entries", len(ents))
		}
		for _, sub := range []string{"layers", "tmp"} {
			ents, err := os.ReadDir(filepath.Join(image.StoreDir(cfg.StateDir), sub))
			if err != nil || len(ents) != 0 {
				t.Errorf("layer store %s after a refused pull: %d entries, %v", sub, len(ents), err)
			}
		}
	}

	// Refusals first, while the store is empty: nothing of them may stay.
	t.Run("key not in KBS", func(t *testing.T) {
		err := create("att-img-404", refs["unknown"])
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "kbs:///default/key/2") || !strings.Contains(err.Error(), "not found") {
			t.Fatalf("CreateContainer: %v, want PERMISSION_DENIED naming the key and the KBS's answer", err)
		}
		a.gone(t, "att-img-404")
		storeEmpty(t, "att-img-404")
	})
	t.Run("KBS forbids the key", func(t *testing.T) {
		kbs.FailNext(403)
		err := create("att-img-403", refs["forbidden"])
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "kbs:///default/key/3") || !strings.Contains(err.Error(), "403") {
			t.Fatalf("CreateContainer: %v, want PERMISSION_DENIED naming the key", err)
		}
		a.gone(t, "att-img-403")
		storeEmpty(t, "att-img-403")
	})
	t.Run("key released", func(t *testing.T) {
		before := kbs.Count("resource")
		if err := create("att-img-ok", refs["released"]); err != nil {
			t.Fatal(err)
		}
		if kbs.Count("resource") == before {
			t.Error("the layer key was not fetched from the KBS")
		}
		if out, st := a.run(t, "att-img-ok"); out != "from the encrypted image 1 unsealed\n" || st != 0 {
			t.Fatalf("container printed %q (status %d)", out, st)
		}
	})
	// The pull was measured, by manifest digest, as CoCo records it.
	var pulls []string
	for _, ev := range a.events(t) {
		if ev.Operation == "PullImage" {
			pulls = append(pulls, ev.Content)
		}
	}
	if len(pulls) != 1 || !strings.HasPrefix(pulls[0], refs["released"]+"@sha256:") {
		t.Errorf("PullImage events %q, want one for %s", pulls, refs["released"])
	}
}
