# cocoon pod policy, written by `cocoonctl policy generate`.
#
# The rules below are fixed; everything pod-specific is in policy_data at
# the end of the file. Each check is a named function that returns "" when
# its field is right and "<field>: <what differs>" when it is not, so a
# denial (the agent's error message, and `cocoonctl policy explain`) names
# the field. The rules keep no state between requests.
#
# Built-ins used (all standard Rego, also in regorus): concat, count,
# is_array, min, object.get, print, regex.match, replace, sprintf.
package agent_policy

import rego.v1

# ---------------------------------------------------------------------------
# CreateContainer: the pause container, or one of the pod's containers.

default CreateContainerRequest := false

CreateContainerRequest if count(create_problems) == 0

# The denial's print output is what the host sees after "is blocked by
# policy:"; its first entry is the first field that differs in the
# container entry that came closest.
CreateContainerRequest := false if {
	count(create_problems) > 0
	print(concat("; ", create_problems))
}

container_type := object.get(input.OCI.Annotations, policy_data.annotations.container_type, "")

container_name := object.get(input.OCI.Annotations, policy_data.annotations.container_name, "")

sandbox_name := object.get(input.OCI.Annotations, policy_data.annotations.sandbox_name, "")

create_problems := sandbox_problems if container_type == "sandbox"

create_problems := container_problems if container_type != "sandbox"

# ---------------------------------------------------------------------------
# The pause container: fixed by the runtime's settings.

sandbox_problems := [p |
	some p in [
		check_pod_name_any,
		check_namespace,
		check_oci_version,
		check_pause_args,
		check_pause_storage,
	]
	p != ""
]

check_pod_name_any := "" if {
	some c in policy_data.containers
	regex.match(c.pod_name, sandbox_name)
} else := sprintf("OCI.Annotations[%q]: %q is not a pod name of this policy", [policy_data.annotations.sandbox_name, sandbox_name])

check_pause_args := "" if {
	input.OCI.Process.Args == policy_data.pause.args
} else := sprintf("OCI.Process.Args: got %v, want %v for the pause container", [input.OCI.Process.Args, policy_data.pause.args])

check_pause_storage := "" if {
	[s.source | some s in input.storages] == [policy_data.pause.source]
} else := sprintf("storages: got sources %v, want [%q] for the pause container", [[s.source | some s in input.storages], policy_data.pause.source])

# ---------------------------------------------------------------------------
# A workload container: matched by name, then field by field. The entry
# with the fewest differences is the one a denial describes.

candidates := [c | some c in policy_data.containers; c.name == container_name]

candidate_problems := [problems(c) | some c in candidates]

container_problems := [] if {
	some ps in candidate_problems
	count(ps) == 0
} else := [closest] if {
	count(candidates) > 0
} else := [sprintf("OCI.Annotations[%q]: no container named %q in this policy", [policy_data.annotations.container_name, container_name])]

closest := [sprintf("container %q (%s): %s", [c.name, c.workload, concat("; ", ps)]) |
	some i, ps in candidate_problems
	count(ps) == min({count(x) | some x in candidate_problems})
	c := candidates[i]
][0]

problems(c) := [p |
	some p in [
		check_pod_name(c),
		check_namespace,
		check_oci_version,
		check_image_storage(c),
		check_image_annotation(c),
		check_other_storages(c),
		check_root(c),
		check_args(c),
		check_env(c),
		check_cwd(c),
		check_user(c),
		check_additional_gids(c),
		check_caps(c),
		check_no_new_privileges(c),
		check_masked_paths(c),
		check_readonly_paths(c),
		check_mounts(c),
		check_terminal(c),
		check_pidns(c),
	]
	p != ""
]

check_pod_name(c) := "" if {
	regex.match(c.pod_name, sandbox_name)
} else := sprintf("OCI.Annotations[%q]: %q is not a pod of %s", [policy_data.annotations.sandbox_name, sandbox_name, c.workload])

# The namespace is pinned only when the policy was generated with one.
check_namespace := "" if {
	policy_data.namespace == ""
} else := "" if {
	object.get(input.OCI.Annotations, policy_data.annotations.sandbox_namespace, "") == policy_data.namespace
} else := sprintf("OCI.Annotations[%q]: got %q, want %q", [
	policy_data.annotations.sandbox_namespace,
	object.get(input.OCI.Annotations, policy_data.annotations.sandbox_namespace, ""),
	policy_data.namespace,
])

check_oci_version := "" if {
	input.OCI.Version in policy_data.oci_versions
} else := sprintf("OCI.Version: %q is not one of %v", [input.OCI.Version, policy_data.oci_versions])

# The image is pinned by digest: the guest pulls exactly this manifest, so
# another image pushed under the same tag is refused.
guest_pull_sources := [s.source | some s in input.storages; s.driver == "image_guest_pull"]

check_image_storage(c) := "" if {
	guest_pull_sources == [c.image]
} else := sprintf("storages[image_guest_pull].source: got %v, want [%q]", [guest_pull_sources, c.image])

check_image_annotation(c) := "" if {
	object.get(input.OCI.Annotations, policy_data.annotations.image_name, "") == c.image
} else := sprintf("OCI.Annotations[%q]: got %q, want %q", [policy_data.annotations.image_name, object.get(input.OCI.Annotations, policy_data.annotations.image_name, ""), c.image])

other_storage_ok(c, s) if s.driver == "image_guest_pull"

other_storage_ok(c, s) if s.driver in c.storage_drivers

check_other_storages(c) := "" if {
	every s in input.storages {
		other_storage_ok(c, s)
	}
} else := sprintf("storages: driver %q is not used by this container's volumes", [[s.driver | some s in input.storages; not other_storage_ok(c, s)][0]])

check_root(c) := "" if {
	input.OCI.Root.Path == replace(policy_data.guest_rootfs, "$(cid)", input.container_id)
	input.OCI.Root.Readonly == c.readonly_root
} else := sprintf("OCI.Root: got %v, want path %q readonly %v", [input.OCI.Root, replace(policy_data.guest_rootfs, "$(cid)", input.container_id), c.readonly_root])

check_args(c) := "" if {
	input.OCI.Process.Args == c.args
} else := sprintf("OCI.Process.Args: got %v, want %v", [input.OCI.Process.Args, c.args])

# Env is exact: every entry of the pod spec and image must be there, and
# any other entry must be allowed by name (values the owner cannot know:
# fieldRef, Secrets) or by an allowance pattern.
env_ok(c, e) if e in c.env

env_ok(c, e) if {
	some name in c.env_names
	regex.match(concat("", ["^", name, "="]), e)
}

env_ok(c, e) if {
	some r in c.env_patterns
	regex.match(r, e)
}

env_ok(_, e) if {
	some r in policy_data.env
	regex.match(r, e)
}

check_env(c) := "" if {
	every e in input.OCI.Process.Env {
		env_ok(c, e)
	}
	every e in c.env {
		e in input.OCI.Process.Env
	}
} else := sprintf("OCI.Process.Env: unexpected %q", [bad[0]]) if {
	bad := [e | some e in input.OCI.Process.Env; not env_ok(c, e)]
	count(bad) > 0
} else := sprintf("OCI.Process.Env: missing %q", [[e | some e in c.env; not e in input.OCI.Process.Env][0]])

check_cwd(c) := "" if {
	c.cwd == ""
} else := "" if {
	input.OCI.Process.Cwd == c.cwd
} else := sprintf("OCI.Process.Cwd: got %q, want %q", [input.OCI.Process.Cwd, c.cwd])

check_user(c) := "" if {
	input.OCI.Process.User.UID == c.uid
	c.gid == null
} else := "" if {
	input.OCI.Process.User.UID == c.uid
	input.OCI.Process.User.GID == c.gid
} else := sprintf("OCI.Process.User: got uid %v gid %v, want uid %v gid %v", [input.OCI.Process.User.UID, input.OCI.Process.User.GID, c.uid, c.gid])

check_additional_gids(c) := "" if {
	c.gids == null
} else := "" if {
	every g in input.OCI.Process.User.AdditionalGids {
		g in c.gids
	}
} else := sprintf("OCI.Process.User.AdditionalGids: %v is not within %v", [input.OCI.Process.User.AdditionalGids, c.gids])

cap_sets := ["Ambient", "Bounding", "Effective", "Inheritable", "Permitted"]

process_caps(k) := v if {
	v := input.OCI.Process.Capabilities[k]
	is_array(v)
} else := []

check_caps(c) := "" if {
	c.privileged
} else := "" if {
	every k in cap_sets {
		every cap in process_caps(k) {
			cap in c.caps
		}
	}
} else := sprintf("OCI.Process.Capabilities: %s: %q is not granted by the pod spec (privileged or added capability)", [k, cap]) if {
	bad := [[k, cap] |
		some k in cap_sets
		some cap in process_caps(k)
		not cap in c.caps
	]
	[k, cap] := bad[0]
}

check_no_new_privileges(c) := "" if {
	input.OCI.Process.NoNewPrivileges == c.no_new_privileges
} else := sprintf("OCI.Process.NoNewPrivileges: got %v, want %v", [input.OCI.Process.NoNewPrivileges, c.no_new_privileges])

check_masked_paths(c) := "" if {
	every p in c.masked_paths {
		p in input.OCI.Linux.MaskedPaths
	}
} else := sprintf("OCI.Linux.MaskedPaths: %q is missing (privileged?)", [[p | some p in c.masked_paths; not p in input.OCI.Linux.MaskedPaths][0]])

check_readonly_paths(c) := "" if {
	every p in c.readonly_paths {
		p in input.OCI.Linux.ReadonlyPaths
	}
} else := sprintf("OCI.Linux.ReadonlyPaths: %q is missing (privileged?)", [[p | some p in c.readonly_paths; not p in input.OCI.Linux.ReadonlyPaths][0]])

# A mount must match a rule of the container's volumes, of the runtime's
# fixed mounts, or of an allowance: destination and type exactly, the
# source by regex, and "ro" where the rule is read-only.
mount_matches(r, m) if {
	r.destination == m.destination
	r.type == m.type_
	regex.match(r.source, m.source)
	not r.read_only
}

mount_matches(r, m) if {
	r.destination == m.destination
	r.type == m.type_
	regex.match(r.source, m.source)
	r.read_only
	"ro" in m.options
}

mount_ok(c, m) if {
	some r in c.mounts
	mount_matches(r, m)
}

mount_ok(_, m) if {
	some r in policy_data.mounts
	mount_matches(r, m)
}

check_mounts(c) := "" if {
	every m in input.OCI.Mounts {
		mount_ok(c, m)
	}
} else := sprintf("OCI.Mounts: %s from %q (%s, %v) is not a volume of this container", [m.destination, m.source, m.type_, m.options]) if {
	m := [m | some m in input.OCI.Mounts; not mount_ok(c, m)][0]
}

check_terminal(c) := "" if {
	input.OCI.Process.Terminal == c.tty
} else := sprintf("OCI.Process.Terminal: got %v, want %v", [input.OCI.Process.Terminal, c.tty])

check_pidns(c) := "" if {
	input.sandbox_pidns == c.share_pid
} else := sprintf("sandbox_pidns: got %v, want %v (shareProcessNamespace)", [input.sandbox_pidns, c.share_pid])

# ---------------------------------------------------------------------------
# ExecProcess: only the pod's exec probes and lifecycle hooks.

default ExecProcessRequest := false

ExecProcessRequest if input.process.Args in policy_data.exec

ExecProcessRequest := false if {
	not input.process.Args in policy_data.exec
	print(sprintf("process.Args: %v is not an exec probe or lifecycle command of this pod", [input.process.Args]))
}

# ---------------------------------------------------------------------------
# CopyFile: only into the runtime's shared directory.

default CopyFileRequest := false

CopyFileRequest if {
	some r in policy_data.copy_file
	regex.match(r, input.path)
}

CopyFileRequest := false if {
	every r in policy_data.copy_file {
		not regex.match(r, input.path)
	}
	print(sprintf("path: %q is not a file the runtime shares with a container", [input.path]))
}

# A generated policy cannot be replaced from the host.
default SetPolicyRequest := false
