package generate

import corev1 "k8s.io/api/core/v1"

// gpus is the number of GPUs c asks for: the sum of its resources.limits
// of the settings' GPU resources, as genpolicy counts them
// (get_nvidia_pgpu_count, src/pod.rs:1229-1233 at Kata 4.1.0). A device
// plugin's extended resource is a whole number; a negative sum asks for
// none.
func (b *builder) gpus(c corev1.Container) int64 {
	var n int64
	for _, name := range b.s.CDI.GPUResources {
		if q, ok := c.Resources.Limits[corev1.ResourceName(name)]; ok {
			n += q.Value()
		}
	}
	return max(n, 0)
}
