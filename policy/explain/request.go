package explain

import (
	"bytes"
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/cocoon-tee/cocoon/policy/input"
)

// Request is a request ready to explain: its rule name, the policy input
// the agent would build for it and, except for CopyFile, the message.
type Request struct {
	Kind  string
	Input map[string]any
	// Message is the decoded request (nil for CopyFile, whose input is
	// the pre-digested form).
	Message proto.Message
}

// Digest is the input's sha256 as the decision log records it.
func (r Request) Digest() string {
	if r.Message == nil {
		return ""
	}
	var c input.Canonical
	return c.Digest(r.Message)
}

// ParseRequest reads a request for kind (a request message name such as
// CreateContainerRequest, or an rpc name such as CreateContainer). The
// document is either protojson, as `cocoonctl call` takes and prints it,
// or the policy input in Kata's shape (e.g. from a Kata test case or from
// `policy eval`). protojson is tried first because it rejects unknown
// fields, while the Kata decoder ignores them like serde does: a Kata
// document uses names (type_, byte arrays) protojson refuses. Either way
// the request is decoded into its message and encoded again, so the input
// is exactly what the agent would evaluate.
func ParseRequest(kind string, data []byte) (Request, error) {
	if len(data) > input.MaxDocument {
		return Request{}, fmt.Errorf("request of %d bytes exceeds %d", len(data), input.MaxDocument)
	}
	if n, err := input.RequestName(kind); err == nil {
		kind = n
	}
	if kind == "CopyFileRequest" {
		return parseCopyFile(data)
	}
	m, err := input.NewRequest(kind)
	if err != nil {
		return Request{}, err
	}
	perr := protojson.UnmarshalOptions{}.Unmarshal(data, m)
	if perr != nil {
		proto.Reset(m)
		if kerr := input.Decode(data, m); kerr != nil {
			return Request{}, fmt.Errorf("%s: neither protojson (%v) nor the Kata policy-input shape (%w)", kind, perr, kerr)
		}
	}
	return Request{Kind: kind, Input: input.Encode(m), Message: m}, nil
}

// parseCopyFile reads a CopyFile policy input: {path, file_type, ...}.
func parseCopyFile(data []byte) (Request, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return Request{}, fmt.Errorf("CopyFileRequest: %w", err)
	}
	if doc == nil {
		return Request{}, fmt.Errorf("CopyFileRequest: want a JSON object")
	}
	if dec.More() {
		return Request{}, fmt.Errorf("CopyFileRequest: trailing data after the document")
	}
	return Request{Kind: "CopyFileRequest", Input: input.CopyFileDefaults(doc)}, nil
}
