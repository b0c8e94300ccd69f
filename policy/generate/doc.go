// Package generate writes the pod owner's agent policy from Kubernetes YAML:
// it reads the workloads, resolves every image to a digest (rewriting the
// YAML to it), reads each image's config and users without unpacking it,
// and renders one Rego module — our rules plus the pod's data — wrapped in
// initdata. What the runtime and the cluster add to a pod's requests comes
// from Settings, and accepted mutations from declarative allowances.
//
// It is a cocoonctl package: the agent never imports it.
package generate
