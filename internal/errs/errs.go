// Package errs makes errors of a containerd/errdefs class with a formatted
// message. The class decides the status code at the rpc boundary
// (agent/server); the message is all the host reads, so it must say what was
// wrong and with which value.
package errs

import "fmt"

// Class is what each errdefs sentinel (errdefs.ErrNotFound, ...) implements.
type Class interface{ WithMessage(string) error }

// Newf returns an error of class c whose text is the formatted message alone
// (errors.Is(err, c) holds; the class name is not added to the text).
func Newf(c Class, format string, a ...any) error {
	return c.WithMessage(fmt.Sprintf(format, a...))
}
