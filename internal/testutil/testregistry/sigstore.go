package testregistry

import (
	"context"
	"os"
	"strings"
	"testing"

	"go.podman.io/image/v5/copy"
	"go.podman.io/image/v5/docker"
	"go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/oci/layout"
	"go.podman.io/image/v5/signature"
	"go.podman.io/image/v5/types"
)

// PushSigstoreSigned copies the OCI layout image src ("oci:DIR:TAG") to
// repoTag and signs it with key, storing the signature as configured by the
// registries.d directory regsD. Debian's skopeo is built without sigstore
// signing, so this uses containers/image directly.
func (r *Registry) PushSigstoreSigned(t testing.TB, src, repoTag, regsD string, key *SigstoreKey) string {
	t.Helper()
	dir, tag, _ := strings.Cut(strings.TrimPrefix(src, "oci:"), ":")
	srcRef, err := layout.NewReference(dir, tag)
	if err != nil {
		t.Fatal(err)
	}
	named, err := reference.ParseNormalizedNamed(r.Addr + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	destRef, err := docker.NewReference(named)
	if err != nil {
		t.Fatal(err)
	}
	pol, err := signature.NewPolicyContext(&signature.Policy{Default: signature.PolicyRequirements{signature.NewPRInsecureAcceptAnything()}})
	if err != nil {
		t.Fatal(err)
	}
	defer pol.Destroy()
	pass, err := os.ReadFile(key.PassphraseFile)
	if err != nil {
		t.Fatal(err)
	}
	_, err = copy.Image(context.Background(), pol, destRef, srcRef, &copy.Options{
		SignBySigstorePrivateKeyFile:     key.Private,
		SignSigstorePrivateKeyPassphrase: []byte(strings.TrimSpace(string(pass))),
		DestinationCtx: &types.SystemContext{
			DockerInsecureSkipTLSVerify: types.OptionalBoolTrue,
			RegistriesDirPath:           regsD,
			DockerAuthConfig:            r.authConfig(),
		},
	})
	if err != nil {
		t.Fatalf("sigstore-signed push of %s: %v", repoTag, err)
	}
	return named.String()
}

func (r *Registry) authConfig() *types.DockerAuthConfig {
	if r.User == "" {
		return nil
	}
	return &types.DockerAuthConfig{Username: r.User, Password: r.Password}
}
