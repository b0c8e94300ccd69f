// Package layer builds host-shared layer images: an OCI layer turned into
// the EROFS image and dm-verity hash tree that containerd's EROFS differ
// writes on a Kata node, so that the root hash a pod's policy pins is the
// one the node hands the guest. The storage options it prints for a layer
// are agent/storage/erofs's, which the agent parses.
package layer
