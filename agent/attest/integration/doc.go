// Package integration holds end-to-end tests of attestation through the real agent:
// daemon.Run on a unix socket, real containers, the real registry, and the
// test KBS double. Only TEE hardware is faked (the sample attester, or
// go-sev-guest's fake SNP device). The package has no code of its own.
package integration
