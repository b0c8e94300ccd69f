package input

import (
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// agentService is the ttrpc service whose requests policies see.
const agentService = "grpc.AgentService"

// RequestName is the rule a request of method is checked against: the name
// of the method's input message, as Kata queries `data.agent_policy.<name>`.
// Most are "<Method>Request"; ReadStdout and ReadStderr share
// ReadStreamRequest, WriteStdin is WriteStreamRequest, GetGuestDetails is
// GuestDetailsRequest, GetVolumeStats is VolumeStatsRequest and the MemAgent
// setters are MemAgentMemcgConfig and MemAgentCompactConfig. It reads the
// compiled service descriptor, so it cannot drift from the protocol.
func RequestName(method string) (string, error) {
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(agentService)
	if err != nil {
		return "", fmt.Errorf("agent service descriptor: %w", err)
	}
	md := d.(protoreflect.ServiceDescriptor).Methods().ByName(protoreflect.Name(method))
	if md == nil {
		return "", fmt.Errorf("unknown agent method %q", method)
	}
	return string(md.Input().Name()), nil
}

// NewRequest returns an empty request message for a request name such as
// "CreateContainerRequest" (used by offline evaluation).
func NewRequest(name string) (proto.Message, error) {
	mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName("grpc." + name))
	if err != nil {
		return nil, fmt.Errorf("unknown request kind %q", name)
	}
	return mt.New().Interface(), nil
}

// ForRequest returns the policy input for req. It is the request in Kata's
// shape, except for CopyFile, whose input is the pre-digested form Kata
// evaluates (see CopyFile).
func ForRequest(req proto.Message) (map[string]any, error) {
	if cf, ok := req.(*agentpb.CopyFileRequest); ok {
		return CopyFile(cf)
	}
	return Encode(req), nil
}

// File types of a CopyFile input, from the S_IFMT bits of file_mode.
const (
	sIFMT  = 0o170000
	sIFREG = 0o100000
	sIFDIR = 0o040000
	sIFLNK = 0o120000
)

// CopyFile is the input Kata builds for a CopyFileRequest so that rules need
// not decode modes or bytes: path, file_type ("Regular", "Directory",
// "Symlink" or "Unknown"), symlink_target (the data as text for a symlink,
// else null) and the request's numeric fields. The file data itself is left
// out. A symlink whose target is not valid UTF-8 is an error, as in Kata.
func CopyFile(req *agentpb.CopyFileRequest) (map[string]any, error) {
	var fileType string
	switch req.GetFileMode() & sIFMT {
	case sIFREG:
		fileType = "Regular"
	case sIFDIR:
		fileType = "Directory"
	case sIFLNK:
		fileType = "Symlink"
	default:
		fileType = "Unknown"
	}
	var target any
	if fileType == "Symlink" {
		if !utf8.Valid(req.GetData()) {
			return nil, fmt.Errorf("CopyFile %q: symlink target is not valid UTF-8", req.GetPath())
		}
		target = string(req.GetData())
	}
	return map[string]any{
		"path":           req.GetPath(),
		"file_type":      fileType,
		"symlink_target": target,
		"file_size":      json.Number(strconv.FormatInt(req.GetFileSize(), 10)),
		"file_mode":      json.Number(strconv.FormatUint(uint64(req.GetFileMode()), 10)),
		"dir_mode":       json.Number(strconv.FormatUint(uint64(req.GetDirMode()), 10)),
		"uid":            json.Number(strconv.FormatInt(int64(req.GetUid()), 10)),
		"gid":            json.Number(strconv.FormatInt(int64(req.GetGid()), 10)),
		"offset":         json.Number(strconv.FormatInt(req.GetOffset(), 10)),
	}, nil
}

// CopyFileDefaults completes a partial CopyFile input document the way
// serde's defaults do in Kata's test harness: absent fields become
// "", "Unknown", null and 0.
func CopyFileDefaults(doc map[string]any) map[string]any {
	out := map[string]any{
		"path": "", "file_type": "Unknown", "symlink_target": nil,
		"file_size": json.Number("0"), "file_mode": json.Number("0"), "dir_mode": json.Number("0"),
		"uid": json.Number("0"), "gid": json.Number("0"), "offset": json.Number("0"),
	}
	for k := range out {
		if v, ok := doc[k]; ok {
			out[k] = v
		}
	}
	return out
}
