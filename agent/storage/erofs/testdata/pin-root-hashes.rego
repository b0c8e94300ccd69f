import future.keywords.contains
import future.keywords.if
import future.keywords.in

# The dm-verity root hashes of the layers this pod may run from, as
# `cocoonctl layer build --image REF` prints them (one per layer).
pinned_root_hashes := {
	"ea1997fa68592d39cbe85d237d78652fed1cfe7dcb6780dfafa6e0d69ee83658",
}

default CreateContainerRequest := false

# A container is allowed when every layer the host offers is pinned (add the
# rest of your CreateContainer checks here).
CreateContainerRequest if {
	count(unpinned_layers) == 0
}

root_hash_option := "X-kata.dmverity.roothash="

# One message per storage whose root hash is not pinned; print() puts it in
# the PERMISSION_DENIED the runtime sees.
unpinned_layers contains msg if {
	some i, s in input.storages
	some o in s.options
	startswith(o, root_hash_option)
	hash := substring(o, count(root_hash_option), -1)
	not hash in pinned_root_hashes
	msg := sprintf("erofs layer container %s storage %d (%s%s): dm-verity root hash %s is not allowed by policy (policy pins %s); the node built this layer differently from `cocoonctl layer build` (erofs-utils version or mkfs options)",
		[input.container_id, i, s.source, partition_of(s), hash, concat(", ", sort([h | some h in pinned_root_hashes]))])
	print(msg)
}

partition_of(s) := concat("", [sprintf(" partition %s", [substring(o, count("X-kata.partition-number="), -1)]) |
	some o in s.options
	startswith(o, "X-kata.partition-number=")
])
