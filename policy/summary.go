package policy

import (
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/cocoon-tee/cocoon/policy/decisionlog"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// The annotations a summary reads, as containerd's CRI plugin and CRI-O
// set them on a pod's containers and as the Kata runtime reads them to
// pick the image it has the guest pull (kata-containers
// src/runtime/virtcontainers/kata_agent.go, handleImageGuestPullBlockVolume
// and getContainerTypeforCRI; containerd internal/cri/annotations).
var (
	containerTypeKeys = []string{"io.kubernetes.cri.container-type", "io.kubernetes.cri-o.ContainerType"}
	imageNameKeys     = []string{"io.kubernetes.cri.image-name", "io.kubernetes.cri-o.ImageName"}
)

// guestPull is the storage driver whose source is the image reference the
// guest pulls (COMPAT.md §6).
const guestPull = "image_guest_pull"

// summarize is what the decision entry of msg records of what it would
// have the pod do (decisionlog.Summary): for CreateContainer, ExecProcess
// and SetPolicy, the requests cocoonctl audit lists; nil for every other
// request, so stream and wait decisions pay nothing. Only values the host
// itself sent are read — ids, the image reference, annotations, argv, the
// policy's digest — never env, mounts or anything the owner sealed. With a
// verified exec grant the argv is the granted one (the request's own is
// "cocoon-exec <token>").
func summarize(msg proto.Message, grant *ExecGrant) *decisionlog.Summary {
	switch r := msg.(type) {
	case *agentpb.CreateContainerRequest:
		s := &decisionlog.Summary{}
		s.ContainerID = clip(s, r.ContainerId)
		for _, st := range r.Storages {
			if st.GetDriver() == guestPull {
				s.Image = clip(s, st.Source)
				break
			}
		}
		if oci := r.OCI; oci != nil {
			s.ContainerType = clip(s, annotation(oci.Annotations, containerTypeKeys))
			s.ImageName = clip(s, annotation(oci.Annotations, imageNameKeys))
			setArgs(s, oci.Process.GetArgs())
		}
		return s
	case *agentpb.ExecProcessRequest:
		s := &decisionlog.Summary{}
		s.ContainerID = clip(s, r.ContainerId)
		s.ExecID = clip(s, r.ExecId)
		if grant == nil {
			setArgs(s, r.Process.GetArgs())
			return s
		}
		s.GrantNonce = clip(s, grant.Nonce)
		argv, ok := grantArgv(grant)
		if !ok {
			s.Truncated = true // the grant's argv could not be read: say the record is incomplete
		}
		setArgs(s, argv)
		return s
	case *agentpb.SetPolicyRequest:
		return &decisionlog.Summary{NewPolicySHA256: Digest(r.Policy)}
	}
	return nil
}

// annotation returns the first of keys that is set.
func annotation(a map[string]string, keys []string) string {
	for _, k := range keys {
		if v, ok := a[k]; ok {
			return v
		}
	}
	return ""
}

// setArgs records at most MaxSummaryArgs arguments, each clipped.
func setArgs(s *decisionlog.Summary, args []string) {
	if len(args) == 0 {
		return
	}
	if len(args) > decisionlog.MaxSummaryArgs {
		args, s.Truncated = args[:decisionlog.MaxSummaryArgs], true
	}
	s.Args = make([]string, len(args))
	for i, a := range args {
		s.Args[i] = clip(s, a)
	}
}

// clip cuts v to MaxSummaryString bytes, at a character boundary so the
// log keeps the text readable, and marks s truncated when it cut.
func clip(s *decisionlog.Summary, v string) string {
	if len(v) <= decisionlog.MaxSummaryString {
		return v
	}
	s.Truncated = true
	n := decisionlog.MaxSummaryString
	for n > 0 && !utf8.RuneStart(v[n]) {
		n--
	}
	return v[:n]
}

// grantArgv is the granted argv the observer put in the grant's policy
// input (input.cocoon_exec_grant.argv, a list of strings).
func grantArgv(g *ExecGrant) ([]string, bool) {
	list, ok := g.Input["argv"].([]any)
	if !ok {
		return nil, false
	}
	argv := make([]string, len(list))
	for i, v := range list {
		if argv[i], ok = v.(string); !ok {
			return nil, false
		}
	}
	return argv, true
}
