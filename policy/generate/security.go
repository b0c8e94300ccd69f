package generate

import (
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// podSecurity reads what w's securityContext, and c's over it (nil for
// the pause), say about seccomp, user namespaces and SELinux.
func (b *builder) podSecurity(w *Workload, c *corev1.SecurityContext) podSecurity {
	var profile *corev1.SeccompProfile
	var se *corev1.SELinuxOptions
	if psc := w.Spec.SecurityContext; psc != nil {
		profile, se = psc.SeccompProfile, psc.SELinuxOptions
	}
	if c != nil && c.SeccompProfile != nil {
		profile = c.SeccompProfile
	}
	if c != nil && c.SELinuxOptions != nil {
		se = c.SELinuxOptions
	}
	p := podSecurity{Seccomp: "optional", UserNS: w.Spec.HostUsers != nil && !*w.Spec.HostUsers, SELinux: seLinuxLabel(se)}
	switch {
	case profile == nil:
	case profile.Type == corev1.SeccompProfileTypeUnconfined:
		p.Seccomp = "none"
	case !b.s.SeccompStripped:
		p.Seccomp = "required"
	}
	return p
}

// seLinuxLabel is the regex of the label containerd makes from o: the
// parts the pod sets, and any value where it leaves one to the node's
// policy. "" (no options) allows no label.
func seLinuxLabel(o *corev1.SELinuxOptions) string {
	if o == nil || (o.User == "" && o.Role == "" && o.Type == "" && o.Level == "") {
		return ""
	}
	part := func(v, anyValue string) string {
		if v == "" {
			return anyValue
		}
		return regexp.QuoteMeta(v)
	}
	return "^" + part(o.User, "[^:]+") + ":" + part(o.Role, "[^:]+") + ":" + part(o.Type, "[^:]+") + ":" + part(o.Level, ".+") + "$"
}

// rootfsPropagation are the root propagations containerd sets for c:
// "rshared" for a Bidirectional volumeMount, "rslave" for a
// HostToContainer one, else none.
func rootfsPropagation(c corev1.Container) []string {
	out := []string{""}
	for _, vm := range c.VolumeMounts {
		if vm.MountPropagation == nil {
			continue
		}
		switch *vm.MountPropagation {
		case corev1.MountPropagationBidirectional:
			out = append(out, "rshared")
		case corev1.MountPropagationHostToContainer:
			out = append(out, "rslave")
		}
	}
	return out
}

// hostnameCut is, when w's pods can have names longer than the 63
// characters of a host name, the start of every host name the kubelet
// cuts from them (trailing "-" and "." dropped); "" otherwise.
func hostnameCut(w *Workload) string {
	if w.Spec.Hostname != "" {
		return ""
	}
	prefix, longest := w.Name, len(w.Name)
	switch w.Kind {
	case "Pod":
		// A Pod's name is its own, or generateName and five characters.
		if w.Name == "" {
			prefix = w.generateName
			longest = len(prefix) + 5
		}
	case "Deployment":
		longest += 17 // -<pod-template-hash up to 10>-<5>
	case "CronJob":
		longest += 18 // -<scheduled minute>-<5>
	case "StatefulSet":
		longest += 11 // -<ordinal>
	default:
		longest += 6 // -<5>
	}
	if longest <= 63 {
		return ""
	}
	if len(prefix) > 63 {
		prefix = prefix[:63]
	}
	return strings.TrimRight(prefix, "-.")
}
