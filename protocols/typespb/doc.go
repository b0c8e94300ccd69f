// Package typespb holds the Go bindings of the "types" protobuf package of
// cocoon's Kata-compatible agent protocol: network interfaces, routes, ARP
// neighbours and the enums they use.
//
// The code is generated from protocols/protos/types.proto by
// protocols/gen.sh; only this file is hand-written.
package typespb
