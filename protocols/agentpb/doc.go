// Package agentpb holds the Go bindings of cocoon's Kata-compatible guest
// agent protocol: the grpc.AgentService and grpc.Health ttrpc services and
// the OCI spec, CSI volume-stats and request/response messages they carry.
//
// The code is generated from protocols/protos by protocols/gen.sh; only this
// file is hand-written.
package agentpb
