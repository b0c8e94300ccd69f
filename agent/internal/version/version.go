// Package version holds the build's version strings.
package version

// Version is the cocoon release; the Makefile sets it with -ldflags -X.
var Version = "0.1.0-dev"

// APIVersion is the Kata agent protocol revision cocoon speaks, reported as
// grpc_version by Health.Version.
const APIVersion = "0.0.1"
