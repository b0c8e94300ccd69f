package image

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
	"go.yaml.in/yaml/v3"

	"github.com/cocoon-tee/cocoon/agent/internal/image/imgconfig"
	"github.com/cocoon-tee/cocoon/internal/errs"
)

// Phrases CoCo's tests and users grep the runtime's log for; image-rs
// writes them (src/image.rs:57 and :80, src/signature/mod.rs:36,
// src/decrypt.rs:28, guest-components 8246e5e0) and kata's
// tests/integration/kubernetes/k8s-guest-pull-image*.bats look for them.
const (
	textPullFailed     = "Failed to pull image"
	textPolicyRejected = "Image policy rejected: Denied by policy"
	textNotAuthorized  = "Not authorized"
	textDecryptFailed  = "Failed to decrypt the image layer, please ensure that the decryption key is placed and correct"
)

// resolveKeyPaths replaces every keyPath of a signedBy or sigstoreSigned
// requirement that names a URI (kbs:///..., file:///...) with the key's
// bytes as keyData, so containers/image never opens a path it cannot read.
// image-rs fetches keyPath through its resource provider
// (src/signature/policy/cosign/mod.rs:68); plain paths are left to
// containers/image, which reads them from the guest's file system.
func resolveKeyPaths(ctx context.Context, raw []byte, r imgconfig.Resolver) ([]byte, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, errs.Newf(errdefs.ErrInvalidArgument, "image security policy: %v", err)
	}
	changed := false
	fix := func(reqs []map[string]any) error {
		for _, req := range reqs {
			typ, _ := req["type"].(string)
			path, _ := req["keyPath"].(string)
			if (typ != "sigstoreSigned" && typ != "signedBy") || !strings.Contains(path, "://") {
				continue
			}
			if _, ok := req["keyData"]; ok {
				return errs.Newf(errdefs.ErrInvalidArgument, "image security policy: %s has both keyPath and keyData", typ)
			}
			key, err := r.Resolve(ctx, path)
			if err != nil {
				return fmt.Errorf("image security policy: %s keyPath: %w", typ, err)
			}
			delete(req, "keyPath")
			req["keyData"] = base64.StdEncoding.EncodeToString(key)
			changed = true
		}
		return nil
	}
	if d, ok := doc["default"]; ok {
		var reqs []map[string]any
		if err := json.Unmarshal(d, &reqs); err != nil {
			return nil, errs.Newf(errdefs.ErrInvalidArgument, "image security policy default: %v", err)
		}
		if err := fix(reqs); err != nil {
			return nil, err
		}
		var err error
		if doc["default"], err = json.Marshal(reqs); err != nil {
			return nil, err
		}
	}
	if t, ok := doc["transports"]; ok {
		var transports map[string]map[string][]map[string]any
		if err := json.Unmarshal(t, &transports); err != nil {
			return nil, errs.Newf(errdefs.ErrInvalidArgument, "image security policy transports: %v", err)
		}
		for _, scopes := range transports {
			for _, reqs := range scopes {
				if err := fix(reqs); err != nil {
					return nil, err
				}
			}
		}
		var err error
		if doc["transports"], err = json.Marshal(transports); err != nil {
			return nil, err
		}
	}
	if !changed {
		return raw, nil
	}
	return json.Marshal(doc)
}

// sigstoreAttachmentsByDefault returns the registries.d document to use:
// cosign signatures are looked up as registry attachments (the
// sha256-<digest>.sig tag) unless the document says otherwise, as image-rs
// always does for sigstoreSigned (its sigstore configuration only concerns
// simple signing). An empty document becomes one that says just that.
func sigstoreAttachmentsByDefault(doc []byte) ([]byte, error) {
	var m map[string]any
	if err := yaml.Unmarshal(doc, &m); err != nil {
		return nil, errs.Newf(errdefs.ErrInvalidArgument, "sigstore_config_uri: %v", err)
	}
	if m == nil {
		m = map[string]any{}
	}
	def, _ := m["default-docker"].(map[string]any)
	if def == nil {
		if m["default-docker"] != nil {
			return nil, errdefs.ErrInvalidArgument.WithMessage("sigstore_config_uri: default-docker is not a mapping")
		}
		def = map[string]any{}
	}
	if _, set := def["use-sigstore-attachments"]; set {
		return doc, nil
	}
	def["use-sigstore-attachments"] = true
	m["default-docker"] = def
	return yaml.Marshal(m)
}
