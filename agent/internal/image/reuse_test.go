package image

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"

	"github.com/cocoon-tee/cocoon/internal/testutil/testregistry"
)

// TestStoredLayerNeedsItsOwnBlob pulls an encrypted image and keeps it, then
// pulls images that name the same diff_ids without being that blob with
// its key: none of them may be handed the stored plaintext.
func TestStoredLayerNeedsItsOwnBlob(t *testing.T) {
	f := newFixture(t)
	px := testregistry.NewProxy(t, f.reg)
	f.hosts = append(f.hosts, px.Addr)
	keys := filepath.Join(f.dir, "keys")
	_, pub := testregistry.RSAKeyPair(t, keys)
	src := f.build("secret", testregistry.Files(map[string]string{"secret.txt": "classified"}))
	f.reg.Push(t, src, "enc/secret:1", nil, "--encryption-key", "jwe:"+pub)
	f.reg.Push(t, src, "plain/copy:1", nil)
	f.reg.Push(t, f.build("decoy", testregistry.Files(map[string]string{"public.txt": "nothing here"})), "decoy:1", nil)
	encrypted := fetchImage(t, f.reg.Addr, "enc/secret", "1")
	// Same config (so the same diff_ids) but the decoy's blobs.
	forged := regImage{config: encrypted.config, layers: fetchImage(t, f.reg.Addr, "decoy", "1").layers}
	pushImage(t, f.reg.Addr, "forged", "1", forged)

	f.conf.DecryptionKeysDir = keys
	owner, err := f.puller().Pull(context.Background(), px.Addr+"/enc/secret:1")
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Release()
	if b, err := os.ReadFile(filepath.Join(owner.Layers[1], "secret.txt")); err != nil || string(b) != "classified" {
		t.Fatalf("encrypted image: %q %v", b, err)
	}
	f.conf.DecryptionKeysDir = ""
	keyless := f.puller()

	t.Run("same encrypted image without a key", func(t *testing.T) {
		im, err := keyless.Pull(context.Background(), px.Addr+"/enc/secret:1")
		if err == nil {
			im.Release()
			t.Fatal("the stored plaintext was handed to a pull that holds no key")
		}
		// skopeo encrypts every layer; the error names the first refused.
		names := strings.Contains(err.Error(), encrypted.layerDigest(0).String()) || strings.Contains(err.Error(), encrypted.layerDigest(1).String())
		if !errdefs.IsPermissionDenied(err) || !names {
			t.Fatalf("got %v, want PERMISSION_DENIED naming an encrypted layer", err)
		}
	})
	t.Run("forged blobs under the same diff_ids", func(t *testing.T) {
		before := px.BlobGets()
		im, err := keyless.Pull(context.Background(), px.Addr+"/forged:1")
		if err == nil {
			im.Release()
			t.Fatal("a manifest naming other blobs got the stored layers")
		}
		if !errors.Is(err, ErrDigest) {
			t.Fatalf("got %v, want the forged blob's digest error", err)
		}
		if px.BlobGets()-before < 2 {
			t.Errorf("%d blob downloads: the forged layer was not fetched and verified", px.BlobGets()-before)
		}
	})
	t.Run("plain copy downloads its own layers", func(t *testing.T) {
		before := px.BlobGets()
		im, err := keyless.Pull(context.Background(), px.Addr+"/plain/copy:1")
		if err != nil {
			t.Fatal(err)
		}
		defer im.Release()
		if im.Fetched != 2 || px.BlobGets()-before != 3 {
			t.Errorf("fetched %d layers in %d blob downloads; want 2 in 3 (config + 2 layers)", im.Fetched, px.BlobGets()-before)
		}
		for i := range im.Layers {
			if im.Layers[i] == owner.Layers[i] {
				t.Errorf("layer %d of the plain copy is the encrypted image's stored layer", i)
			}
		}
	})
}

// TestEncryptedLayerReuseAsksForTheKey uses layers wrapped for the CoCo key
// provider: pulling the image again reuses the decrypted layer only after
// the KBS released the key again and that key opens this layer's key.
func TestEncryptedLayerReuseAsksForTheKey(t *testing.T) {
	f := newFixture(t)
	px := testregistry.NewProxy(t, f.reg)
	f.hosts = append(f.hosts, px.Addr)
	f.reg.Push(t, f.build("secret", testregistry.Files(map[string]string{"secret.txt": "classified"})), "kp/plain:1", nil)
	img := fetchImage(t, f.reg.Addr, "kp/plain", "1")
	kek, attackerKEK := randomKey(t), randomKey(t)
	const kid, attackerKid = "kbs:///default/key/1", "kbs:///attacker/key/1"
	plainTop := img.layers[1].blob
	encBlob, ann := testregistry.EncryptForKeyProvider(t, plainTop, kek, kid)
	img.layers[1] = regLayer{mediaType: img.layers[1].mediaType + "+encrypted", annotations: ann, blob: encBlob}
	pushImage(t, f.reg.Addr, "kp/enc", "1", img)
	// The attacker copies the encrypted blob and wraps a layer key of its
	// own under a key its KBS will release: the unwrap succeeds, but the
	// key it yields is not the one that produced the stored layer.
	_, forgedAnn := testregistry.EncryptForKeyProvider(t, plainTop, attackerKEK, attackerKid)
	img.layers[1].annotations = forgedAnn
	pushImage(t, f.reg.Addr, "kp/forged", "1", img)
	topDigest := digest.FromBytes(encBlob)

	kbs := &countingKeys{keys: map[string][]byte{kid: kek}}
	p := f.puller(func(o *Options) { o.KeyResolver = kbs })
	first, err := p.Pull(context.Background(), px.Addr+"/kp/enc:1")
	if err != nil {
		t.Fatal(err)
	}
	defer first.Release()
	if b, err := os.ReadFile(filepath.Join(first.Layers[1], "secret.txt")); err != nil || string(b) != "classified" {
		t.Fatalf("decrypted layer: %q %v", b, err)
	}
	if kbs.Calls() != 1 || first.Fetched != 2 {
		t.Fatalf("first pull: %d key requests, %d layers fetched; want 1, 2", kbs.Calls(), first.Fetched)
	}

	before := px.BlobGets()
	second, err := p.Pull(context.Background(), px.Addr+"/kp/enc:1")
	if err != nil {
		t.Fatal(err)
	}
	defer second.Release()
	if kbs.Calls() != 2 {
		t.Errorf("second pull made %d key requests in all; want 2: reuse must ask the KBS again", kbs.Calls())
	}
	if got := px.BlobGets() - before; got != 1 || second.Fetched != 0 || second.Layers[1] != first.Layers[1] {
		t.Errorf("second pull: %d blob downloads, %d layers fetched; want 1 (config), 0 and the stored layer", got, second.Fetched)
	}

	refusals := map[string]*countingKeys{
		"KBS refuses":     {keys: map[string][]byte{}},
		"wrong key":       {keys: map[string][]byte{kid: attackerKEK}},
		"forged: own key": {keys: map[string][]byte{attackerKid: attackerKEK}},
	}
	for name, keys := range refusals {
		t.Run(name, func(t *testing.T) {
			// Refused before any layer download (config only); the forged
			// manifest fetches and checks its own copy of the blob.
			ref, downloads := px.Addr+"/kp/enc:1", 1
			if strings.HasPrefix(name, "forged") {
				ref, downloads = px.Addr+"/kp/forged:1", 2
			}
			before := px.BlobGets()
			im, err := f.puller(func(o *Options) { o.KeyResolver = keys }).Pull(context.Background(), ref)
			if err == nil {
				im.Release()
				t.Fatal("the stored plaintext was handed out without its key")
			}
			t.Logf("refused: %v", err)
			if got := px.BlobGets() - before; got != downloads {
				t.Errorf("%d blob downloads, want %d", got, downloads)
			}
			if keys.Calls() != 1 {
				t.Errorf("%d key requests, want 1", keys.Calls())
			}
			if !strings.Contains(err.Error(), topDigest.String()) {
				t.Errorf("error does not name layer %s: %v", topDigest, err)
			}
			if !errdefs.IsPermissionDenied(err) {
				t.Errorf("got %v, want PERMISSION_DENIED", err)
			}
		})
	}
}

func randomKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// layerDigest is the digest of layer i's blob as a manifest names it.
func (im regImage) layerDigest(i int) digest.Digest { return digest.FromBytes(im.layers[i].blob) }
