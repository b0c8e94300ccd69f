package decisionlog

// Summary says, in a decision entry, what the request would have the pod
// do: the image and command line of a CreateContainer, the command line
// of an ExecProcess (the granted one when the exec presents an owner's
// grant), the digest of the policy a SetPolicy installs. Every value is
// one the host itself sent in the request (or, for a grant, in the token
// it passed on), cut to a bound; nothing from the environment, mounts or
// any sealed channel. Only the requests cocoonctl audit lists carry one,
// so stream and wait decisions pay nothing for it. It is hashed with the
// rest of the entry, so the chain covers it.
type Summary struct {
	ContainerID string `json:"container_id,omitempty"`
	ExecID      string `json:"exec_id,omitempty"`
	// ContainerType is the CRI container-type annotation as sent:
	// "sandbox" for the pod's pause container, "container" otherwise.
	ContainerType string `json:"container_type,omitempty"`
	// Image is the source of the image_guest_pull storage ("pause" for
	// the sandbox); ImageName the CRI image-name annotation.
	Image     string `json:"image,omitempty"`
	ImageName string `json:"image_name,omitempty"`
	// Args is the process's argv, at most MaxSummaryArgs entries of at
	// most MaxSummaryString bytes each.
	Args []string `json:"args,omitempty"`
	// GrantNonce is the nonce of the owner's exec grant the exec ran
	// under; Args is then the granted argv.
	GrantNonce string `json:"grant_nonce,omitempty"`
	// NewPolicySHA256 is the sha256 of the policy text a SetPolicy sends.
	NewPolicySHA256 string `json:"new_policy_sha256,omitempty"`
	// Truncated is set when any value above was cut to its bound.
	Truncated bool `json:"truncated,omitempty"`
}

// Bounds of a Summary: an entry stays small whatever the host sends.
const (
	MaxSummaryArgs   = 16
	MaxSummaryString = 256
)

// appendSummary appends s as the JSON object json.Marshal writes for it,
// fields in the struct's order (TestEncodeMatchesJSON, FuzzEncode).
func appendSummary(dst []byte, s *Summary) []byte {
	dst = append(dst, '{')
	start := len(dst)
	field := func(key, v string) {
		if v == "" {
			return
		}
		if len(dst) > start {
			dst = append(dst, ',')
		}
		dst = appendString(append(dst, key...), v)
	}
	field(`"container_id":`, s.ContainerID)
	field(`"exec_id":`, s.ExecID)
	field(`"container_type":`, s.ContainerType)
	field(`"image":`, s.Image)
	field(`"image_name":`, s.ImageName)
	if len(s.Args) > 0 {
		if len(dst) > start {
			dst = append(dst, ',')
		}
		dst = append(dst, `"args":[`...)
		for i, a := range s.Args {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, a)
		}
		dst = append(dst, ']')
	}
	field(`"grant_nonce":`, s.GrantNonce)
	field(`"new_policy_sha256":`, s.NewPolicySHA256)
	if s.Truncated {
		if len(dst) > start {
			dst = append(dst, ',')
		}
		dst = append(dst, `"truncated":true`...)
	}
	return append(dst, '}')
}
