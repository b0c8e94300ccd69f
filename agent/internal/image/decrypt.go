package image

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync/atomic"

	"github.com/containerd/errdefs"
	"github.com/containers/ocicrypt/blockcipher"
	"github.com/containers/ocicrypt/keywrap/jwe"
	"github.com/opencontainers/go-digest"
	"go.podman.io/image/v5/types"

	"github.com/cocoon-tee/cocoon/internal/errs"
)

// Annotations carrying wrapped layer keys and public cipher options.
const (
	annJWE        = "org.opencontainers.image.enc.keys.jwe"
	annAAProvider = "org.opencontainers.image.enc.keys.provider.attestation-agent"
	annPubOpts    = "org.opencontainers.image.enc.pubopts"
	// maxAnnotation bounds each key annotation we decode.
	maxAnnotation = 64 << 10
)

// errDecrypt classes layers we cannot decrypt; it is final, not retried.
var errDecrypt = fmt.Errorf("%s: %w", textDecryptFailed, errdefs.ErrPermissionDenied)

// KeyResolver fetches the key-encryption key named by a key id such as
// kbs:///default/key/1 (the attestation side implements it against the KBS).
type KeyResolver interface {
	ResolveKey(ctx context.Context, kid string) ([]byte, error)
}

// AAAnnotation is the attestation-agent key-provider annotation, decoded.
type AAAnnotation struct {
	Kid         string `json:"kid"`
	WrappedData string `json:"wrapped_data"`
	IV          string `json:"iv"`
	WrapType    string `json:"wrap_type"`
}

// ParseAAAnnotation decodes the key-provider annotation: comma-separated
// base64 JSON packets, one per recipient, tried in order by the caller.
func ParseAAAnnotation(b64 string) ([]AAAnnotation, error) {
	if len(b64) > maxAnnotation {
		return nil, errdefs.ErrInvalidArgument.WithMessage("key-provider annotation too large")
	}
	var out []AAAnnotation
	for _, part := range strings.Split(b64, ",") {
		raw, err := base64.StdEncoding.DecodeString(part)
		if err != nil {
			return nil, errs.Newf(errdefs.ErrInvalidArgument, "key-provider annotation: %v", err)
		}
		var a AAAnnotation
		if err := json.Unmarshal(raw, &a); err != nil {
			return nil, errs.Newf(errdefs.ErrInvalidArgument, "key-provider annotation: %v", err)
		}
		if a.Kid == "" || a.WrappedData == "" || a.IV == "" {
			return nil, errdefs.ErrInvalidArgument.WithMessage("key-provider annotation: kid, wrapped_data and iv are required")
		}
		if a.WrapType != "" && a.WrapType != "A256GCM" {
			return nil, errs.Newf(errdefs.ErrInvalidArgument, "key-provider annotation: wrap_type %q (want A256GCM)", a.WrapType)
		}
		out = append(out, a)
	}
	return out, nil
}

// Unwrap opens the wrapped layer options with a 32-byte AES-256-GCM key.
func (a AAAnnotation) Unwrap(kek []byte) ([]byte, error) {
	if len(kek) != 32 {
		return nil, fmt.Errorf("key %s is %d bytes, A256GCM needs 32: %w", a.Kid, len(kek), errDecrypt)
	}
	ct, err := base64.StdEncoding.DecodeString(a.WrappedData)
	if err != nil {
		return nil, errs.Newf(errdefs.ErrInvalidArgument, "wrapped_data: %v", err)
	}
	iv, err := base64.StdEncoding.DecodeString(a.IV)
	if err != nil {
		return nil, errs.Newf(errdefs.ErrInvalidArgument, "iv: %v", err)
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCMWithNonceSize(block, len(iv))
	if err != nil || len(iv) == 0 {
		return nil, errs.Newf(errdefs.ErrInvalidArgument, "iv of %d bytes", len(iv))
	}
	plain, err := gcm.Open(nil, iv, ct, nil)
	if err != nil {
		return nil, fmt.Errorf("unwrap with key %s: %v: %w", a.Kid, err, errDecrypt)
	}
	return plain, nil
}

// privateOpts recovers the layer's private cipher options (its symmetric
// key) from whichever key annotation we can open.
func (p *Puller) privateOpts(ctx context.Context, ann map[string]string) ([]byte, error) {
	var tried []string
	if v := ann[annJWE]; v != "" {
		if p.decrypt == nil {
			tried = append(tried, "jwe: no decryption keys configured (decryption_keys_dir)")
		} else {
			kw := jwe.NewKeyWrapper()
			for _, part := range strings.Split(v, ",") {
				raw, err := base64.StdEncoding.DecodeString(part)
				if err != nil || len(raw) > maxAnnotation {
					return nil, errdefs.ErrInvalidArgument.WithMessage("jwe key annotation is not valid base64")
				}
				opts, err := kw.UnwrapKey(p.decrypt, raw)
				if err == nil {
					return opts, nil
				}
				tried = append(tried, "jwe: "+err.Error())
			}
		}
	}
	if v := ann[annAAProvider]; v != "" {
		anns, err := ParseAAAnnotation(v)
		if err != nil {
			return nil, err
		}
		if p.o.KeyResolver == nil {
			tried = append(tried, "attestation-agent: no key resolver (KBS) available")
		}
		for _, a := range anns {
			if p.o.KeyResolver == nil {
				break
			}
			kek, err := p.o.KeyResolver.ResolveKey(ctx, a.Kid)
			if err != nil {
				tried = append(tried, fmt.Sprintf("attestation-agent %s: %v", a.Kid, err))
				continue
			}
			opts, err := a.Unwrap(kek)
			if err == nil {
				return opts, nil
			}
			tried = append(tried, err.Error())
		}
	}
	if len(tried) == 0 {
		return nil, fmt.Errorf("no supported key annotation (jwe or provider.attestation-agent): %w", errDecrypt)
	}
	return nil, fmt.Errorf("no key could open the layer key (%s): %w", strings.Join(tried, "; "), errDecrypt)
}

// isEncrypted says whether the manifest marks a layer as encrypted.
func isEncrypted(info types.BlobInfo) bool {
	return strings.HasSuffix(info.MediaType, "+encrypted")
}

// layerKey opens an encrypted layer's cipher options with this pull's keys:
// the key resolver (the KBS) is asked on every call, so each pull proves
// again that it may decrypt the layer.
func (p *Puller) layerKey(ctx context.Context, info types.BlobInfo) (blockcipher.LayerBlockCipherOptions, error) {
	var opts blockcipher.LayerBlockCipherOptions
	privData, err := p.privateOpts(ctx, info.Annotations)
	if err != nil {
		return opts, err
	}
	if err := json.Unmarshal(privData, &opts.Private); err != nil {
		return opts, fmt.Errorf("layer key options: %v: %w", err, errDecrypt)
	}
	if len(opts.Private.SymmetricKey) == 0 {
		return opts, fmt.Errorf("layer key options hold no key: %w", errDecrypt)
	}
	if pub := info.Annotations[annPubOpts]; pub != "" {
		raw, err := base64.StdEncoding.DecodeString(pub)
		if err != nil || len(raw) > maxAnnotation {
			return opts, errdefs.ErrInvalidArgument.WithMessage("pubopts annotation is not valid base64")
		}
		if err := json.Unmarshal(raw, &opts.Public); err != nil {
			return opts, errs.Newf(errdefs.ErrInvalidArgument, "pubopts annotation: %v", err)
		}
	}
	return opts, nil
}

// keyDigest commits to what decides an encrypted layer's plaintext: the
// symmetric key and the cipher's parameters (its nonce). Succeeding to
// unwrap a manifest's wrapped key proves only that the KBS released some
// key that opens *that* annotation; anyone can wrap a key of their own
// under a key their KBS releases and pair it with someone else's blob.
// Equal digests prove the puller holds the very key that decrypted the
// stored layer. The key is 256 random bits, so its digest reveals nothing.
func keyDigest(o blockcipher.PrivateLayerBlockCipherOptions) digest.Digest {
	// Marshalling a byte slice and a map of byte slices cannot fail; maps
	// marshal with sorted keys, so the encoding is stable.
	b, _ := json.Marshal(struct {
		Key     []byte            `json:"key"`
		Options map[string][]byte `json:"options"`
	}{o.SymmetricKey, o.CipherOptions})
	return digest.SHA256.FromBytes(append([]byte("cocoon layer key v1\x00"), b...))
}

// decryptLayer wraps r with the layer's block cipher. Integrity: the HMAC is
// checked at the end of the stream and the diff_id after decompression.
func decryptLayer(r io.Reader, opts blockcipher.LayerBlockCipherOptions) (*cipherStream, error) {
	h, err := blockcipher.NewLayerBlockCipherHandler()
	if err != nil {
		return nil, err
	}
	src := &endReader{r: r}
	dr, _, err := h.Decrypt(src, opts)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", err, errDecrypt)
	}
	return &cipherStream{r: dr, src: src}, nil
}

// endReader records that the ciphertext was read to its end.
type endReader struct {
	r     io.Reader
	ended atomic.Bool
}

func (e *endReader) Read(b []byte) (int, error) {
	n, err := e.r.Read(b)
	if err == io.EOF {
		e.ended.Store(true)
	}
	return n, err
}

// cipherStream is the decrypted layer. A failure after the whole
// ciphertext was read is the HMAC check: it is reported as errDecrypt with
// a readable message (ocicrypt's carries raw HMAC bytes) and remembered, so
// the puller can name it even when the unpacker wrapped it.
type cipherStream struct {
	r      io.Reader
	src    *endReader
	failed atomic.Bool
}

func (c *cipherStream) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	if err != nil && err != io.EOF && c.src.ended.Load() {
		c.failed.Store(true)
		err = c.Err()
	}
	return n, err
}

// Err is the integrity failure, or nil when none was seen.
func (c *cipherStream) Err() error {
	if !c.failed.Load() {
		return nil
	}
	return fmt.Errorf("the layer does not match its HMAC (wrong key or altered ciphertext): %w", errDecrypt)
}
