package cli

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
)

// Owner key files keys generate writes.
const (
	sealKeyFile = "seal.key" // X25519 or P-256 private key: opens sealed logs
	sealPubFile = "seal.pub" // its public key: goes into initdata
	execKeyFile = "exec.key" // Ed25519 or P-256 private key: signs exec grants
	execPubFile = "exec.pub" // its public key: goes into initdata
	ownerTOML   = "cocoon.toml"
)

func newKeys() *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "Manage the pod owner's keys for sealed logs and exec grants"}
	cmd.AddCommand(newKeysGenerate())
	return cmd
}

func newKeysGenerate() *cobra.Command {
	var out string
	var p256 bool
	cmd := &cobra.Command{
		Use:   "generate --out DIR [--p256]",
		Short: "Write an owner key pair for sealing logs and one for signing exec grants",
		Long: `Write the pod owner's keys into DIR (created if needed):

  seal.key, seal.pub   X25519 (P-256 with --p256): container output is sealed to seal.pub
  exec.key, exec.pub   Ed25519 (ECDSA P-256 with --p256): exec grants are signed with exec.key
  cocoon.toml          the [owner] table naming both public keys, to put into initdata:
                       cocoonctl initdata create --policy p.rego --file cocoon.toml=DIR/cocoon.toml

Private keys are PEM "PRIVATE KEY" (PKCS #8), mode 0600; public keys are PEM
"PUBLIC KEY" (PKIX). Existing files are not overwritten.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return fmt.Errorf("--out is required")
			}
			var seal *ecdh.PrivateKey
			var sign crypto.Signer
			var err error
			if p256 {
				if seal, err = ecdh.P256().GenerateKey(rand.Reader); err == nil {
					sign, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				}
			} else {
				if seal, err = ecdh.X25519().GenerateKey(rand.Reader); err == nil {
					_, sign, err = ed25519.GenerateKey(rand.Reader)
				}
			}
			if err != nil {
				return err
			}
			files, err := ownerKeyFiles(seal, sign)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(out, 0o700); err != nil {
				return err
			}
			for _, f := range files {
				if err := writeNew(filepath.Join(out, f.name), f.data, f.mode); err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %s, %s (keep private), %s, %s, %s\n", out, sealKeyFile, execKeyFile, sealPubFile, execPubFile, ownerTOML)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "directory for the key files")
	cmd.Flags().BoolVar(&p256, "p256", false, "P-256 for both keys instead of X25519 and Ed25519")
	return cmd
}

type keyFile struct {
	name string
	data []byte
	mode os.FileMode
}

func ownerKeyFiles(seal *ecdh.PrivateKey, sign crypto.Signer) ([]keyFile, error) {
	sealPriv, err := x509.MarshalPKCS8PrivateKey(seal)
	if err != nil {
		return nil, err
	}
	sealPub, err := x509.MarshalPKIXPublicKey(seal.PublicKey())
	if err != nil {
		return nil, err
	}
	execPriv, err := x509.MarshalPKCS8PrivateKey(sign)
	if err != nil {
		return nil, err
	}
	execPub, err := x509.MarshalPKIXPublicKey(sign.Public())
	if err != nil {
		return nil, err
	}
	priv := func(der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}) }
	pub := func(der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}) }
	toml := fmt.Sprintf(`# The pod owner's keys (cocoonctl keys generate). Put this file into
# initdata as cocoon.toml; the initdata digest binds it to the TEE.
[owner]
# Container output of sealed containers is encrypted to this key (PKIX DER, base64).
seal_key = %q
# Exec grants must be signed by one of these keys (PKIX DER, base64).
exec_keys = [%q]

[observability]
# Per container, by Kubernetes container name under [observability.containers.NAME].
logs = "seal"    # seal | plain | deny
exec = "grant"   # grant | policy | deny
`, base64.StdEncoding.EncodeToString(sealPub), base64.StdEncoding.EncodeToString(execPub))
	return []keyFile{
		{sealKeyFile, priv(sealPriv), 0o600},
		{sealPubFile, pub(sealPub), 0o644},
		{execKeyFile, priv(execPriv), 0o600},
		{execPubFile, pub(execPub), 0o644},
		{ownerTOML, []byte(toml), 0o644},
	}, nil
}

// writeNew creates path with data, refusing to replace an existing file
// (a key overwritten by mistake locks its owner out of everything sealed
// to it).
func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// readKey reads a key file of bounded size and parses it with parse.
func readKey[K any](path string, parse func([]byte) (K, error)) (K, error) {
	b, err := readFileBounded(path, 64<<10)
	if err != nil {
		var zero K
		return zero, err
	}
	return parse(b)
}
