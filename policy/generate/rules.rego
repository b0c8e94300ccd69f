# cocoon pod policy, written by `cocoonctl policy generate`.
#
# The rules below are fixed; everything pod-specific is in policy_data at
# the end of the file. Each check is a named function that returns "" when
# its field is right and "<field>: <what differs>" when it is not, so a
# denial (the agent's error message, and `cocoonctl policy explain`) names
# the field. The rules keep no state between requests.
#
# Built-ins used (all standard Rego, also in regorus): concat, count,
# is_array, is_object, is_string, min, object.get, object.keys,
# object.subset, print, regex.match, replace, sort, sprintf, startswith,
# strings.any_prefix_match, substring, to_number.
package agent_policy

import rego.v1

# ---------------------------------------------------------------------------
# CreateContainer: the pause container, or one of the pod's containers.
#
# Each field has a yes/no test (ok_*) and a description of how it differs
# (check_*, "" when it holds), built on the same test. An allowed request
# only runs the tests, stopping at the first that fails; the descriptions
# are computed only to explain a denial.

default CreateContainerRequest := false

# The denial's print output is what the host sees after "is blocked by
# policy:"; its first entry is the first field that differs in the
# container entry that came closest. "else" describes only a denial, and
# spares an allowed request a second look at create_allowed.
CreateContainerRequest if {
	create_allowed
} else := false if {
	print(concat("; ", create_problems))
}

container_type := object.get(input.OCI.Annotations, policy_data.annotations.container_type, "")

container_name := object.get(input.OCI.Annotations, policy_data.annotations.container_name, "")

sandbox_name := object.get(input.OCI.Annotations, policy_data.annotations.sandbox_name, "")

create_allowed if {
	container_type == "sandbox"
	sandbox_ok
}

create_allowed if {
	container_type != "sandbox"
	some c in candidates
	container_ok(c)
}

create_problems := sandbox_problems if container_type == "sandbox"

create_problems := container_problems if container_type != "sandbox"

# ---------------------------------------------------------------------------
# The pause container: fixed by the runtime's settings (policy_data.pause),
# except its sysctls, user and host name, which come from its pod's spec.
# With a shared PID namespace the pause is PID 1, and /proc/1/root shows
# every container its root and mounts, so it is pinned as fully as a
# workload container: storage, root, process, capabilities, user, mounts,
# namespaces, devices, masked and read-only paths.

pause := policy_data.pause

sandbox_ok if {
	ok_pause_storage
	ok_pause_args
	ok_cdi(pause)
	ok_namespace
	ok_oci_version
	ok_root(pause)
	ok_cwd(pause)
	ok_terminal(pause)
	ok_no_new_privileges(pause)
	ok_string_user
	ok_shared_mounts
	ok_pause_env
	ok_caps(pause)
	ok_masked_paths(pause)
	ok_readonly_paths(pause)
	ok_namespaces(pause.namespaces)
	ok_devices(pause)
	ok_rlimits
	ok_oom_score_adj(policy_data.oom_score_adj.sandbox)
	ok_resources
	ok_pause_mounts
	ok_hooks
	ok_intel_rdt
	ok_username
	ok_apparmor
	ok_rootfs_propagation([""])
	some s in sandbox_entries
	ok_sandbox_sysctls(s)
	ok_pause_user(s)
	ok_pause_hostname(s)
	ok_seccomp(s)
	ok_id_mappings(s)
	ok_selinux(s)
}

sandbox_problems := [p |
	some p in [
		check_pod_name_any,
		check_namespace,
		check_oci_version,
		check_pause_storage,
		check_root(pause),
		check_pause_args,
		check_pause_env,
		check_cdi(pause),
		check_cwd(pause),
		check_pause_user,
		check_string_user,
		check_rlimits,
		check_oom_score_adj(policy_data.oom_score_adj.sandbox),
		check_caps(pause),
		check_no_new_privileges(pause),
		check_masked_paths(pause),
		check_readonly_paths(pause),
		check_sandbox_sysctls,
		check_pause_mounts,
		check_shared_mounts,
		check_namespaces(pause.namespaces, " for the pause container"),
		check_devices(pause),
		check_resources,
		check_pause_hostname,
		check_terminal(pause),
		check_hooks,
		check_pause_seccomp,
		check_rootfs_propagation([""]),
		check_pause_id_mappings,
		check_intel_rdt,
		check_pause_selinux,
		check_apparmor,
		check_username,
	]
	p != ""
]

# The sandbox entries of the workloads whose pods carry this name.
sandbox_entries := [s |
	some s in policy_data.sandboxes
	regex.match(s.pod_name, sandbox_name)
]

ok_pod_name_any if count(sandbox_entries) > 0

check_pod_name_any := "" if ok_pod_name_any
else := sprintf("OCI.Annotations[%q]: %q is not a pod name of this policy", [policy_data.annotations.sandbox_name, sandbox_name])

# The request's sysctls; none when it has no Linux section or no map.
request_sysctls := s if {
	s := input.OCI.Linux.Sysctl
	is_object(s)
} else := {}

# Every sysctl of the request must be allowed with its exact value.
bad_sysctl(allowed) if {
	some k, v in request_sysctls
	not allowed[k] == v
}

# The pod's own sysctls must all be there: a host that drops one weakens
# what the owner asked for. (Values are strings, never false, so "not
# request_sysctls[k]" holds only for a missing name.)
missing_pod_sysctl(s) if {
	some k in s.pod_sysctls
	not request_sysctls[k]
}

ok_sandbox_sysctls(s) if {
	not bad_sysctl(s.sysctls)
	not missing_pod_sysctl(s)
}

# Described against the first entry of the pod name (the pod name check
# reports a name no entry has).
check_sandbox_sysctls := "" if {
	some s in sandbox_entries
	ok_sandbox_sysctls(s)
} else := "" if {
	count(sandbox_entries) == 0
} else := describe_sysctls(sandbox_entries[0].sysctls, sandbox_entries[0].pod_sysctls, "the pod's securityContext.sysctls or the runtime's sandbox defaults")

describe_sysctls(allowed, required, what) := sprintf("OCI.Linux.Sysctl: %q = %q is not one of %s %v", [k, v, what, allowed]) if {
	[k, v] := [[k, v] | some k, v in request_sysctls; not allowed[k] == v][0]
} else := sprintf("OCI.Linux.Sysctl: %q (set by the pod's securityContext.sysctls) is missing", [k]) if {
	k := [k | some k in required; not request_sysctls[k]][0]
}

ok_pause_args if input.OCI.Process.Args == pause.args

check_pause_args := "" if ok_pause_args
else := sprintf("OCI.Process.Args: got %v, want %v for the pause container", [input.OCI.Process.Args, pause.args])

# One storage: the guest's pause bundle, on the container's rootfs.
ok_pause_storage if {
	[s] := input.storages
	s.driver == "image_guest_pull"
	s.source == pause.source
	s.mount_point == rootfs_path
}

check_pause_storage := "" if ok_pause_storage
else := sprintf("storages: got %v, want one image_guest_pull storage of %q on %q for the pause container", [[[s.driver, s.source, s.mount_point] | some s in input.storages], pause.source, rootfs_path])

# The pause image's environment: every entry must match a pattern.
ok_pause_env if not bad_pause_env

bad_pause_env if {
	some e in input.OCI.Process.Env
	not pause_env_ok(e)
}

pause_env_ok(e) if {
	pause.env_regex != ""
	regex.match(pause.env_regex, e)
}

check_pause_env := "" if ok_pause_env
else := sprintf("OCI.Process.Env: unexpected %q for the pause container", [[e | some e in input.OCI.Process.Env; not pause_env_ok(e)][0]])

# The pod's runAsUser and runAsGroup, else the pause image's user (with
# runAsUser alone, that uid's group in the pause image, else 0, as
# containerd resolves it); the groups only the pod's fsGroup and
# supplementalGroups.
ok_pause_user(s) if {
	input.OCI.Process.User.UID == s.uid
	input.OCI.Process.User.GID == s.gid
	not bad_pause_gid(s)
}

bad_pause_gid(s) if {
	some g in input.OCI.Process.User.AdditionalGids
	not g in s.gids
}

# Described against the first entry of the pod name, as the sysctls are.
check_pause_user := "" if {
	some s in sandbox_entries
	ok_pause_user(s)
} else := "" if {
	count(sandbox_entries) == 0
} else := sprintf("OCI.Process.User: got uid %v gid %v, want uid %v gid %v for the pause container", [input.OCI.Process.User.UID, input.OCI.Process.User.GID, s.uid, s.gid]) if {
	s := sandbox_entries[0]
	not [input.OCI.Process.User.UID, input.OCI.Process.User.GID] == [s.uid, s.gid]
} else := sprintf("OCI.Process.User.AdditionalGids: %v is not within %v (fsGroup, supplementalGroups) for the pause container", [input.OCI.Process.User.AdditionalGids, sandbox_entries[0].gids])

# The mounts of containerd's sandbox spec, as the runtime places them.
pause_mount_ok(m) if {
	some r in pause.mounts[m.destination]
	mount_matches(r, m)
}

ok_pause_mounts if not bad_pause_mount

bad_pause_mount if {
	some m in input.OCI.Mounts
	not pause_mount_ok(m)
}

check_pause_mounts := "" if ok_pause_mounts
else := sprintf("OCI.Mounts: %s from %q (%s, %v) is not a mount of the pause container", [m.destination, m.source, m.type_, m.options]) if {
	m := [m | some m in input.OCI.Mounts; not pause_mount_ok(m)][0]
}

# The host name containerd gives the sandbox: the pod's spec.hostname,
# else its name (cut to 63 characters, and trailing "-" or "." dropped, by
# the kubelet). Workload containers take theirs from the sandbox.
ok_pause_hostname(s) if input.OCI.Hostname == s.hostname

ok_pause_hostname(s) if {
	s.hostname == ""
	input.OCI.Hostname == sandbox_name
}

ok_pause_hostname(s) if {
	s.hostname == ""
	count(sandbox_name) > 63
	input.OCI.Hostname != ""
	count(input.OCI.Hostname) <= 63
	startswith(sandbox_name, input.OCI.Hostname)
}

check_pause_hostname := "" if {
	some s in sandbox_entries
	ok_pause_hostname(s)
} else := "" if {
	count(sandbox_entries) == 0
} else := sprintf("OCI.Hostname: got %q, want the pod's host name %q for the pause container", [input.OCI.Hostname, h]) if {
	s := sandbox_entries[0]
	s.hostname != ""
	h := s.hostname
} else := sprintf("OCI.Hostname: got %q, want the pod's name %q for the pause container", [input.OCI.Hostname, sandbox_name])

# ---------------------------------------------------------------------------
# Fields every container is checked on alike.

# Exactly the namespace types of the settings, each once, none with a
# path: without its own mount or IPC namespace a container would share the
# guest's; a user or network namespace is not what the pod asked for; a
# path would join a namespace the host chose (Kata's agent joins it).
request_namespaces := {ns.Type | some ns in input.OCI.Linux.Namespaces}

# want is the list the runtime sends, written by the generator: the
# settings' types in their order, each {"Path": "", "Type": t}. The
# request is compared with it in one step; any other order is checked as
# a set of types.
ok_namespaces(want) if {
	input.OCI.Linux.Namespaces == want
} else := true if {
	request_namespaces == {ns.Type | some ns in want}
	count(input.OCI.Linux.Namespaces) == count(want)
	not some_namespace_path
}

some_namespace_path if {
	some ns in input.OCI.Linux.Namespaces
	ns.Path != ""
}

check_namespaces(want, what) := "" if ok_namespaces(want)
else := sprintf("OCI.Linux.Namespaces: %s namespace at %q: the policy allows no namespace path%s", [ns.Type, ns.Path, what]) if {
	ns := [ns | some ns in input.OCI.Linux.Namespaces; ns.Path != ""][0]
} else := sprintf("OCI.Linux.Namespaces: got %v, want %v%s", [[ns.Type | some ns in input.OCI.Linux.Namespaces], sort([ns.Type | some ns in want]), what])

# Devices: none handed in by the runtime, none created, none opened in
# the device cgroup. A privileged container may have the node's devices in
# its spec and an open device cgroup, as containerd gives it; it holds
# every capability anyway.
# The usual case, no device anywhere, first: "else" stops there.
ok_devices(c) if {
	not some_request_device
	not some_spec_device
	not some_cgroup_device
} else := true if {
	not some_request_device
	c.privileged
}

some_request_device if some _ in input.devices

some_spec_device if some _ in input.OCI.Linux.Devices

some_cgroup_device if some _ in cgroup_devices_allowed

cgroup_devices_allowed := [d | some d in request_resources.Devices; d.Allow == true]

check_devices(c) := "" if ok_devices(c)
else := sprintf("devices: got %v, the pod spec asks for none", [input.devices]) if {
	some_request_device
} else := sprintf("OCI.Linux.Devices: got %v, the pod spec asks for none (not privileged)", [input.OCI.Linux.Devices]) if {
	some_spec_device
} else := sprintf("OCI.Linux.Resources.Devices: %v allows a device the pod spec does not ask for (not privileged)", [cgroup_devices_allowed[0]])

# No rlimit but the runtime's (containerd drops its defaults): a host
# could otherwise starve the container or lift its limits.
ok_rlimits if not bad_rlimit

bad_rlimit if {
	some r in input.OCI.Process.Rlimits
	not r in policy_data.rlimits
}

check_rlimits := "" if ok_rlimits
else := sprintf("OCI.Process.Rlimits: %v is not one of the runtime's rlimits %v", [[r | some r in input.OCI.Process.Rlimits; not r in policy_data.rlimits][0], policy_data.rlimits])

# Within the kubelet's (workload) or containerd's (pause) range: a lower
# score would keep the container alive over what its QoS class allows
# (-1000: never OOM-killed). Higher is the host's to choose: it can always
# starve the pod.
ok_oom_score_adj(r) if {
	input.OCI.Process.OOMScoreAdj >= r.min
	input.OCI.Process.OOMScoreAdj <= r.max
}

check_oom_score_adj(r) := "" if ok_oom_score_adj(r)
else := sprintf("OCI.Process.OOMScoreAdj: %v is outside %v..%v", [input.OCI.Process.OOMScoreAdj, r.min, r.max])

# Resources: CPU, memory and hugepage limits come from the pod's
# resources, which the platform sets and changes (LimitRange defaults,
# vertical autoscaling, in-place resize) and which affect only how much
# the container gets: not checked. Pids, block I/O and network limits the
# runtime never sends (Kata's runtimes strip them): refused.
request_resources := r if {
	r := input.OCI.Linux.Resources
	is_object(r)
} else := {}

stripped_resources := ["Pids", "BlockIO", "Network"]

ok_resources if {
	object.get(request_resources, "Pids", null) == null
	object.get(request_resources, "BlockIO", null) == null
	object.get(request_resources, "Network", null) == null
}

check_resources := "" if ok_resources
else := sprintf("OCI.Linux.Resources.%s: got %v, the runtime never sets it", [k, request_resources[k]]) if {
	k := [k | some k in stripped_resources; object.get(request_resources, k, null) != null][0]
}

# string_user would replace the user the rules checked (the agent resolves
# it in the container's rootfs); the runtime never sends it, nor
# shared_mounts. Kata's genpolicy requires both unset too.
ok_string_user if input.string_user == null

ok_string_user if input.string_user.uid == ""

check_string_user := "" if ok_string_user
else := sprintf("string_user: got %v, the policy requires it unset", [input.string_user])

ok_shared_mounts if not some_shared_mount

some_shared_mount if some _ in input.shared_mounts

check_shared_mounts := "" if ok_shared_mounts
else := sprintf("shared_mounts: got %v, the policy allows none", [input.shared_mounts])

# OCI hooks are programs the runtime runs around the container, chosen by
# whoever wrote the spec: here the host. The agent drops them (Kata's too),
# and the policy refuses any, so a policy also holds on an agent that
# would run them.
ok_hooks if not some_hook

some_hook if {
	some l in input.OCI.Hooks
	count(l) > 0
}

check_hooks := "" if ok_hooks
else := sprintf("OCI.Hooks: got %v, the policy allows no hook", [input.OCI.Hooks])

# Intel RDT (cache allocation) is never set for a pod; the agent ignores an
# empty schema.
ok_intel_rdt if input.OCI.Linux.IntelRdt == null

ok_intel_rdt if input.OCI.Linux.IntelRdt.L3CacheSchema == ""

check_intel_rdt := "" if ok_intel_rdt
else := sprintf("OCI.Linux.IntelRdt: got %v, the policy allows none", [input.OCI.Linux.IntelRdt])

# The user is checked by number; a name would be resolved in the
# container's rootfs instead (containerd always sends numbers).
ok_username if input.OCI.Process.User.Username == ""

check_username := "" if ok_username
else := sprintf("OCI.Process.User.Username: got %q, the policy requires it empty (uid and gid are checked)", [input.OCI.Process.User.Username])

# None, or containerd's default profile on an AppArmor host (settings'
# apparmor_profiles).
ok_apparmor if input.OCI.Process.ApparmorProfile in policy_data.apparmor_profiles

check_apparmor := "" if ok_apparmor
else := sprintf("OCI.Process.ApparmorProfile: %q is not one of %v", [input.OCI.Process.ApparmorProfile, policy_data.apparmor_profiles])

# Shared or slave root propagation only where a volumeMount asks for it:
# it lets mounts cross between the container and the guest.
ok_rootfs_propagation(allowed) if input.OCI.Linux.RootfsPropagation in allowed

check_rootfs_propagation(allowed) := "" if ok_rootfs_propagation(allowed)
else := sprintf("OCI.Linux.RootfsPropagation: %q is not one of %v (volumeMounts' mountPropagation)", [input.OCI.Linux.RootfsPropagation, allowed])

# Seccomp, by the pod's seccompProfile: RuntimeDefault (or Localhost) a
# profile whose default action refuses, as containerd's does (its
# syscall list is the runtime's and is not pinned); Unconfined none; not
# set, none or a profile that refuses.
refusing_actions := {"SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP"}

ok_seccomp(c) if {
	c.seccomp != "required"
	input.OCI.Linux.Seccomp == null
}

ok_seccomp(c) if {
	c.seccomp != "none"
	input.OCI.Linux.Seccomp.DefaultAction in refusing_actions
}

check_seccomp(c, what) := "" if ok_seccomp(c)
else := sprintf("OCI.Linux.Seccomp: none, but the pod's seccompProfile asks for one (RuntimeDefault or Localhost)%s", [what]) if {
	input.OCI.Linux.Seccomp == null
} else := sprintf("OCI.Linux.Seccomp: a profile, but the pod's seccompProfile is Unconfined%s", [what]) if {
	c.seccomp == "none"
} else := sprintf("OCI.Linux.Seccomp.DefaultAction: %q allows what the profile does not list, want one of %v%s", [input.OCI.Linux.Seccomp.DefaultAction, sort(refusing_actions), what])

# UID and GID mappings only with a user namespace (hostUsers: false).
ok_id_mappings(c) if c.user_ns

ok_id_mappings(c) if {
	count(object.get(input.OCI.Linux, "UIDMappings", [])) == 0
	count(object.get(input.OCI.Linux, "GIDMappings", [])) == 0
}

check_id_mappings(c, what) := "" if ok_id_mappings(c)
else := sprintf("OCI.Linux.UIDMappings/GIDMappings: got %v and %v, the pod shares the host's users (hostUsers)%s", [input.OCI.Linux.UIDMappings, input.OCI.Linux.GIDMappings, what])

# SELinux process and mount labels: none, or the label the pod's
# seLinuxOptions imply (parts it leaves out are the node's to choose).
ok_selinux(c) if {
	input.OCI.Process.SelinuxLabel == ""
	input.OCI.Linux.MountLabel == ""
}

ok_selinux(c) if {
	c.selinux != ""
	selinux_label_ok(c.selinux, input.OCI.Process.SelinuxLabel)
	selinux_label_ok(c.selinux, input.OCI.Linux.MountLabel)
}

selinux_label_ok(_, "")

selinux_label_ok(r, l) if {
	r != ""
	regex.match(r, l)
}

check_selinux(c, what) := "" if ok_selinux(c)
else := sprintf("OCI.Process.SelinuxLabel: %q is not the pod's seLinuxOptions (%s)%s", [input.OCI.Process.SelinuxLabel, selinux_want(c), what]) if {
	not selinux_label_ok(c.selinux, input.OCI.Process.SelinuxLabel)
} else := sprintf("OCI.Linux.MountLabel: %q is not the pod's seLinuxOptions (%s)%s", [input.OCI.Linux.MountLabel, selinux_want(c), what])

selinux_want(c) := "none set: no label" if c.selinux == ""
else := c.selinux

# The pause's, described against the first entry of the pod name.
check_pause_seccomp := check_seccomp(sandbox_entries[0], " for the pause container") if count(sandbox_entries) > 0
else := ""

check_pause_id_mappings := check_id_mappings(sandbox_entries[0], " for the pause container") if count(sandbox_entries) > 0
else := ""

check_pause_selinux := check_selinux(sandbox_entries[0], " for the pause container") if count(sandbox_entries) > 0
else := ""

# ---------------------------------------------------------------------------
# A workload container: its entries are looked up by container name (one
# per workload that has a container of that name), then tested field by
# field. The entry with the fewest differences is the one a denial
# describes.

candidates := cs if {
	cs := policy_data.containers[container_name]
} else := []

# The tests run in order of cost, so a wrong entry is usually ruled out by
# the first. Each test is a function call, and OPA spends about as much
# on a call as on the comparison it makes, so the fields with one allowed
# value are tested together first (ok_expected).
container_ok(c) if {
	ok_expected(c)
	ok_cdi(c)
	ok_image_storage(c)
	ok_args(c)
	ok_pod_name(c)
	ok_namespace
	ok_oci_version
	ok_root_path
	ok_shared_mounts
	ok_oom_score_adj(policy_data.oom_score_adj.container)
	ok_rlimits
	ok_namespaces(policy_data.container_namespaces)
	ok_devices(c)
	ok_other_storages(c)
	ok_additional_gids(c)
	ok_container_sysctls
	ok_caps(c)
	ok_env(c)
	ok_env_sandbox(c)
	ok_mounts(c)
	ok_apparmor
	ok_id_mappings(c)
}

# The fields that have one value the entry allows, or one the runtime
# sends among those allowed, are in c.expect, written by the generator
# in the request's shape (index.go, expected): the image annotation, the
# read-only root, working directory, user number, terminal, no new
# privileges, shared PID namespace, no host name, user name, string user,
# hook, Intel RDT schema, SELinux label or pids/block I/O/network limit,
# seccomp off unless the pod asks for it, private root propagation, and
# the masked and read-only paths in the runtime's order. object.subset
# compares them in one call: each key of c.expect must have the same
# value in the request (objects compared key by key, so the request may
# carry more; an array must appear in the request's array as a run, so
# every masked path is there). When the request differs anywhere, the
# field tests decide one by one, so the verdict is always theirs: c.expect
# only holds values they allow.
ok_expected(c) if object.subset(input, c.expect)
else := true if {
	ok_image_annotation(c)
	ok_root(c)
	ok_cwd(c)
	ok_user(c)
	ok_username
	ok_string_user
	ok_terminal(c)
	ok_pidns(c)
	ok_no_new_privileges(c)
	ok_hostname
	ok_hooks
	ok_intel_rdt
	ok_resources
	ok_selinux(c)
	ok_seccomp(c)
	ok_rootfs_propagation(c.rootfs_propagation)
	ok_masked_paths(c)
	ok_readonly_paths(c)
}

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

# The order of the descriptions: the first one is the field a denial
# leads with.
problems(c) := [p |
	some p in [
		check_pod_name(c),
		check_namespace,
		check_oci_version,
		check_image_storage(c),
		check_image_annotation(c),
		check_cdi(c),
		check_other_storages(c),
		check_root(c),
		check_args(c),
		check_env(c),
		check_env_sandbox(c),
		check_cwd(c),
		check_user(c),
		check_string_user,
		check_additional_gids(c),
		check_rlimits,
		check_oom_score_adj(policy_data.oom_score_adj.container),
		check_caps(c),
		check_no_new_privileges(c),
		check_masked_paths(c),
		check_readonly_paths(c),
		check_container_sysctls,
		check_mounts(c),
		check_shared_mounts,
		check_namespaces(policy_data.container_namespaces, ""),
		check_devices(c),
		check_resources,
		check_hostname,
		check_terminal(c),
		check_pidns(c),
		check_hooks,
		check_seccomp(c, ""),
		check_rootfs_propagation(c.rootfs_propagation),
		check_id_mappings(c, ""),
		check_intel_rdt,
		check_selinux(c, ""),
		check_apparmor,
		check_username,
	]
	p != ""
]

ok_pod_name(c) if regex.match(c.pod_name, sandbox_name)

check_pod_name(c) := "" if ok_pod_name(c)
else := sprintf("OCI.Annotations[%q]: %q is not a pod of %s", [policy_data.annotations.sandbox_name, sandbox_name, c.workload])

# The namespace is pinned only when the policy was generated with one.
sandbox_namespace := object.get(input.OCI.Annotations, policy_data.annotations.sandbox_namespace, "")

ok_namespace if policy_data.namespace == ""

ok_namespace if sandbox_namespace == policy_data.namespace

check_namespace := "" if ok_namespace
else := sprintf("OCI.Annotations[%q]: got %q, want %q", [policy_data.annotations.sandbox_namespace, sandbox_namespace, policy_data.namespace])

ok_oci_version if input.OCI.Version in policy_data.oci_versions

check_oci_version := "" if ok_oci_version
else := sprintf("OCI.Version: %q is not one of %v", [input.OCI.Version, policy_data.oci_versions])

# The image is pinned by digest: the guest pulls exactly this manifest, so
# another image pushed under the same tag is refused. Or the host offers
# the image's layers as verified EROFS disks (docs/layers.md), each of
# which must carry the root hash the policy pins at its partition: the
# image's layers, all of them, in their order.
guest_pull_sources := [s.source | some s in input.storages; s.driver == "image_guest_pull"]

ok_image_storage(c) if {
	guest_pull_sources == [c.image]
	count(layer_storages) == 0
	guest_pull_mount_points == [rootfs_path]
}

guest_pull_mount_points := [s.mount_point | some s in input.storages; s.driver == "image_guest_pull"]

ok_image_storage(c) if {
	count(layer_storages) > 0
	count(guest_pull_sources) == 0
	count(layer_storages) == count(c.root_hashes)
	count({l.position | some l in layer_storages}) == count(layer_storages)
	not bad_layer(c)
}

bad_layer(c) if {
	some l in layer_storages
	not layer_ok(c, l)
}

layer_ok(c, l) if {
	l.hash == c.root_hashes[l.position]
	l.storage.mount_point == layer_rootfs_path
}

# What the agent stacks as host-shared layers (agent/storage/erofs_group.go
# isLayerStorage): Kata's driver name, the multi-layer marker, or a
# verified EROFS block storage.
layer_storage(s) if s.driver == "erofs.multi-layer"

layer_storage(s) if "X-kata.multi-layer=true" in s.options

layer_storage(s) if {
	s.fstype == "erofs"
	"X-kata.dmverity-enabled=true" in s.options
}

# Each layer with its index in storages, its root hash ("" unless exactly
# one) and its place in the stack: partition n is position n-1 (partition
# 1 on top), a layer without a partition its place among the layers.
layer_storages := [l |
	some k, i in [i | some i, s in input.storages; layer_storage(s)]
	s := input.storages[i]
	l := {"index": i, "storage": s, "hash": layer_option(s, "X-kata.dmverity.roothash="), "position": layer_position(s, k)}
]

layer_option(s, prefix) := v if {
	[v] := [substring(o, count(prefix), -1) | some o in s.options; startswith(o, prefix)]
} else := ""

layer_position(s, k) := to_number(p) - 1 if {
	p := layer_option(s, "X-kata.partition-number=")
	regex.match(`^[1-9][0-9]{0,2}$`, p)
} else := k if {
	layer_option(s, "X-kata.partition-number=") == ""
} else := -1

layer_rootfs_path := replace(policy_data.layer_rootfs, "$(cid)", input.container_id)

check_image_storage(c) := "" if ok_image_storage(c)
else := sprintf("storages[image_guest_pull].source: got %v, want [%q]", [guest_pull_sources, c.image]) if {
	count(layer_storages) == 0
	guest_pull_sources != [c.image]
} else := sprintf("storages[image_guest_pull].mount_point: got %v, want [%q]", [guest_pull_mount_points, rootfs_path]) if {
	count(layer_storages) == 0
} else := sprintf("storages: %d host-shared layers and image_guest_pull %v: one or the other", [count(layer_storages), guest_pull_sources]) if {
	count(guest_pull_sources) > 0
} else := sprintf("storages: host-shared layers, but the policy pins no layer root hashes for %q (generated without --pin-layers): guest pull only", [c.image]) if {
	count(c.root_hashes) == 0
} else := describe_layer(c, l) if {
	l := [l | some l in layer_storages; not l.hash in c.root_hashes][0]
} else := sprintf("storages[%d].mount_point: got %q, want %q for a host-shared layer", [l.index, l.storage.mount_point, layer_rootfs_path]) if {
	l := [l | some l in layer_storages; l.storage.mount_point != layer_rootfs_path][0]
} else := sprintf("storages: host-shared layers %v by partition, want the %d layers of %q top first %v", [[[l.position + 1, l.hash] | some l in layer_storages], count(c.root_hashes), c.image, c.root_hashes])

# The text of erofs.RootHashDenied, with the field in front.
describe_layer(c, l) := sprintf("storages[%d]: erofs layer container %s storage %d (%s%s): dm-verity root hash %s is not allowed by policy (policy pins %s); the node built this layer differently from `cocoonctl layer build` (erofs-utils version or mkfs options)", [l.index, input.container_id, l.index, l.storage.source, partition_text(l.storage), hash_text(l.hash), concat(", ", c.root_hashes)])

partition_text(s) := "" if layer_option(s, "X-kata.partition-number=") == ""
else := sprintf(" partition %s", [layer_option(s, "X-kata.partition-number=")])

hash_text(h) := "(none)" if h == ""
else := h

image_name := object.get(input.OCI.Annotations, policy_data.annotations.image_name, "")

ok_image_annotation(c) if image_name == c.image

check_image_annotation(c) := "" if ok_image_annotation(c)
else := sprintf("OCI.Annotations[%q]: got %q, want %q", [policy_data.annotations.image_name, image_name, c.image])

# Device annotations (CDI, "cdi.k8s.io/<name>") ask the runtime for a
# device: Kata's runtime cold-plugs or hot-plugs a GPU for each. A
# container may carry exactly as many as the GPUs its resources.limits ask
# for (c.gpus, absent when none; the pause asks for none), each of the
# settings' key and value form, as genpolicy allows them (cold-plug:
# rules.rego:586-599, the keys and values genpolicy-settings.json:228-240,
# at Kata 4.1.0). Devices themselves stay denied (check_devices), so a
# hot-plug request is refused whatever its annotations.
# Most containers ask for no GPU (no gpus field): one pass over the
# annotations that stops at the first device annotation.
ok_cdi(c) if {
	not c.gpus
	not some_cdi_key
}

ok_cdi(c) if {
	c.gpus > 0
	count(cdi_keys) == c.gpus
	not some_bad_cdi
}

# One built-in over the keys, not a pass over the annotations.
some_cdi_key if strings.any_prefix_match(object.keys(input.OCI.Annotations), policy_data.cdi.prefix)

cdi_keys := {k | some k, _ in input.OCI.Annotations; startswith(k, policy_data.cdi.prefix)}

some_bad_cdi if {
	some k in cdi_keys
	not cdi_ok(k)
}

cdi_ok(k) if {
	regex.match(policy_data.cdi.key, k)
	regex.match(policy_data.cdi.value, input.OCI.Annotations[k])
}

check_cdi(c) := "" if ok_cdi(c)
else := sprintf("OCI.Annotations[%q]: %q is not a GPU of this policy's form", [k, input.OCI.Annotations[k]]) if {
	k := sort([k | some k in cdi_keys; not cdi_ok(k)])[0]
} else := sprintf("OCI.Annotations[%s*]: %d devices, want %d (the container's GPU resources.limits)", [policy_data.cdi.prefix, count(cdi_keys), object.get(c, "gpus", 0)])

other_storage_ok(_, s) if s.driver == "image_guest_pull"

other_storage_ok(_, s) if layer_storage(s)

# A volume's storage only in the volumes' directory of its driver, where
# the container's mount rules take their sources: never on a rootfs.
other_storage_ok(c, s) if {
	s.driver in c.storage_drivers
	regex.match(policy_data.storage_dirs[s.driver], s.mount_point)
}

# "not <some item fails>" rather than "every": it stops at the first
# failing item and is the cheaper form in OPA.
ok_other_storages(c) if not bad_storage(c)

bad_storage(c) if {
	some s in input.storages
	not other_storage_ok(c, s)
}

check_other_storages(c) := "" if ok_other_storages(c)
else := sprintf("storages: driver %q is not used by this container's volumes", [s.driver]) if {
	s := [s | some s in input.storages; not other_storage_ok(c, s)][0]
	not s.driver in c.storage_drivers
} else := sprintf("storages[%d].mount_point: %q is not in the %s volumes' directory (%s)", [i, s.mount_point, s.driver, policy_data.storage_dirs[s.driver]]) if {
	[i, s] := [[i, s] | some i, s in input.storages; not other_storage_ok(c, s)][0]
}

rootfs_path := replace(policy_data.guest_rootfs, "$(cid)", input.container_id)

# On host-shared layers the root is where runtime-rs mounts them.
request_rootfs := layer_rootfs_path if count(layer_storages) > 0
else := rootfs_path

ok_root(c) if {
	ok_root_path
	input.OCI.Root.Readonly == c.readonly_root
}

ok_root_path if input.OCI.Root.Path == request_rootfs

check_root(c) := "" if ok_root(c)
else := sprintf("OCI.Root: got %v, want path %q readonly %v", [input.OCI.Root, request_rootfs, c.readonly_root])

# Exact, unless a word refers to an env var whose value the policy knows
# only by form (c.arg_patterns, absent otherwise): the kubelet substitutes
# the value (pkg/kubelet/container/helpers.go
# ExpandContainerCommandAndArgs), so that word must match its regex, the
# literal parts quoted and the reference the env var's form; the other
# words stay exact.
ok_args(c) if {
	not c.arg_patterns
	input.OCI.Process.Args == c.args
} else := true if {
	patterns := c.arg_patterns
	count(input.OCI.Process.Args) == count(patterns)
	not bad_arg(c.args, patterns)
}

bad_arg(want, patterns) if {
	some i, a in input.OCI.Process.Args
	not arg_ok(patterns[i], want[i], a)
}

arg_ok("", want, a) if a == want

arg_ok(pattern, _, a) if {
	pattern != ""
	regex.match(pattern, a)
}

check_args(c) := "" if ok_args(c)
else := describe_arg(i, c.args[i], c.arg_patterns[i]) if {
	count(input.OCI.Process.Args) == count(c.arg_patterns)
	i := [i | some i, a in input.OCI.Process.Args; not arg_ok(c.arg_patterns[i], c.args[i], a)][0]
} else := sprintf("OCI.Process.Args: got %v, want %v", [input.OCI.Process.Args, c.args])

describe_arg(i, want, "") := sprintf("OCI.Process.Args[%d]: got %q, want %q", [i, input.OCI.Process.Args[i], want])

describe_arg(i, want, pattern) := sprintf("OCI.Process.Args[%d]: got %q, want %q, the $(VAR) of the env var's form (%s)", [i, input.OCI.Process.Args[i], want, pattern]) if pattern != ""

# Env is exact: every entry of the pod spec and image must be there, and
# any other entry must be allowed by name (values the owner cannot know:
# fieldRef, Secrets) or by an allowance pattern. Names are compared as
# strings; only the patterns are regular expressions.
# The pod-wide patterns (in one regex) come first: they allow most of what
# the kubelet adds.
env_ok(c, e) if {
	e in c.env
} else := true if {
	extra_env_ok(c, e)
}

extra_env_ok(c, e) if {
	policy_data.env_regex != ""
	regex.match(policy_data.env_regex, e)
} else := true if {
	some name in c.env_names
	startswith(e, concat("", [name, "="]))
} else := true if {
	some r in c.env_patterns
	regex.match(r, e)
}

# With sets: the pinned entries must all be in the request, and only the
# request's other entries go through the patterns and names: the pod-wide
# patterns (in one regex) first, leaving only the few entries they do not
# allow to the container's names and patterns. A regex is the dearest
# test, so the pinned entries, most of them, are never matched.
ok_env(c) if {
	pinned := {e | some e in c.env}
	count(pinned - request_env) == 0
	not some_unexpected_env(c, unpatterned_env(request_env - pinned))
}

# The entries the pod-wide patterns do not allow (extra_env_ok's first
# way).
unpatterned_env(entries) := {e | some e in entries; not regex.match(re, e)} if {
	re := policy_data.env_regex
	re != ""
} else := entries

some_unexpected_env(c, entries) if {
	some e in entries
	not extra_env_ok(c, e)
}

request_env := {e | some e in input.OCI.Process.Env}

check_env(c) := "" if ok_env(c)
else := sprintf("OCI.Process.Env: unexpected %q", [bad[0]]) if {
	bad := [e | some e in input.OCI.Process.Env; not env_ok(c, e)]
	count(bad) > 0
} else := sprintf("OCI.Process.Env: missing %q", [[e | some e in c.env; not e in input.OCI.Process.Env][0]])

# The downward API's pod name and namespace, when the policy knows them
# only by form (c.env_sandbox, absent otherwise), are the request's own
# sandbox name and namespace annotations: the kubelet fills both from the
# same pod. genpolicy compares the namespace with the annotation
# (rules.rego:1060-1068, allow_var 8, at Kata 4.1.0). CreateContainer
# only: ExecProcess has no annotations, and keeps the form check.
ok_env_sandbox(c) if {
	not c.env_sandbox
} else := true if {
	not bad_env_sandbox(c.env_sandbox)
}

sandbox_field := {"name": sandbox_name, "namespace": sandbox_namespace}

bad_env_sandbox(names) if {
	some name, field in names
	some e in input.OCI.Process.Env
	startswith(e, concat("", [name, "="]))
	e != concat("", [name, "=", sandbox_field[field]])
}

check_env_sandbox(c) := "" if ok_env_sandbox(c)
else := sprintf("OCI.Process.Env: %q is not the pod's %s %q (OCI.Annotations[%q])", [e, field, sandbox_field[field], key]) if {
	[e, field] := [[e, field] |
		some name, field in c.env_sandbox
		some e in input.OCI.Process.Env
		startswith(e, concat("", [name, "="]))
		e != concat("", [name, "=", sandbox_field[field]])
	][0]
	key := {"name": policy_data.annotations.sandbox_name, "namespace": policy_data.annotations.sandbox_namespace}[field]
}

ok_cwd(c) if c.cwd == ""

ok_cwd(c) if input.OCI.Process.Cwd == c.cwd

check_cwd(c) := "" if ok_cwd(c)
else := sprintf("OCI.Process.Cwd: got %q, want %q", [input.OCI.Process.Cwd, c.cwd])

ok_user(c) if {
	input.OCI.Process.User.UID == c.uid
	c.gid == null
}

ok_user(c) if {
	input.OCI.Process.User.UID == c.uid
	input.OCI.Process.User.GID == c.gid
}

check_user(c) := "" if ok_user(c)
else := sprintf("OCI.Process.User: got uid %v gid %v, want uid %v gid %v", [input.OCI.Process.User.UID, input.OCI.Process.User.GID, c.uid, c.gid])

ok_additional_gids(c) if c.gids == null

ok_additional_gids(c) if {
	c.gids != null
	not bad_gid(c)
}

bad_gid(c) if {
	some g in input.OCI.Process.User.AdditionalGids
	not g in c.gids
}

check_additional_gids(c) := "" if ok_additional_gids(c)
else := sprintf("OCI.Process.User.AdditionalGids: %v is not within %v", [input.OCI.Process.User.AdditionalGids, c.gids])

cap_sets := ["Ambient", "Bounding", "Effective", "Inheritable", "Permitted"]

process_caps(k) := v if {
	v := input.OCI.Process.Capabilities[k]
	is_array(v)
} else := []

# Every capability the request grants, in any set (sets that are not
# arrays grant nothing, as in process_caps).
# The distinct arrays first: Bounding, Effective and Permitted are usually
# the same list, read once.
requested_caps := {cap |
	some v in {v |
		some k in cap_sets
		v := input.OCI.Process.Capabilities[k]
		is_array(v)
	}
	some cap in v
}

# The distinct capability lists of the request, each sorted: usually two,
# none ([]) and the one list of Bounding, Effective and Permitted.
request_cap_lists := {sort(v) |
	some k in cap_sets
	v := input.OCI.Process.Capabilities[k]
	is_array(v)
}

# The usual request first: every list none or exactly the entry's
# (c.caps, which the generator sorts), found with one set difference
# instead of a pass over every capability. Any other request is tested
# capability by capability; the fast way only allows what that allows.
ok_caps(c) if {
	c.privileged
} else := true if {
	count(request_cap_lists - {[], c.caps}) == 0
} else := true if {
	count(requested_caps - {x | some x in c.caps}) == 0
}

check_caps(c) := "" if ok_caps(c)
else := sprintf("OCI.Process.Capabilities: %s: %q is not granted by the pod spec (privileged or added capability)", [k, cap]) if {
	bad := [[k, cap] |
		some k in cap_sets
		some cap in process_caps(k)
		not cap in c.caps
	]
	[k, cap] := bad[0]
}

ok_no_new_privileges(c) if input.OCI.Process.NoNewPrivileges == c.no_new_privileges

check_no_new_privileges(c) := "" if ok_no_new_privileges(c)
else := sprintf("OCI.Process.NoNewPrivileges: got %v, want %v", [input.OCI.Process.NoNewPrivileges, c.no_new_privileges])

request_masked := {p | some p in input.OCI.Linux.MaskedPaths}

ok_masked_paths(c) if {
	count({p | some p in c.masked_paths} - request_masked) == 0
}


check_masked_paths(c) := "" if ok_masked_paths(c)
else := sprintf("OCI.Linux.MaskedPaths: %q is missing (privileged?)", [[p | some p in c.masked_paths; not p in input.OCI.Linux.MaskedPaths][0]])

request_readonly := {p | some p in input.OCI.Linux.ReadonlyPaths}

ok_readonly_paths(c) if {
	count({p | some p in c.readonly_paths} - request_readonly) == 0
}

check_readonly_paths(c) := "" if ok_readonly_paths(c)
else := sprintf("OCI.Linux.ReadonlyPaths: %q is missing (privileged?)", [[p | some p in c.readonly_paths; not p in input.OCI.Linux.ReadonlyPaths][0]])

# containerd puts sysctls on the sandbox only: a workload container may
# carry only the runtime's (container_sysctls, none by default).
ok_container_sysctls if not bad_sysctl(policy_data.container_sysctls)

check_container_sysctls := "" if ok_container_sysctls
else := describe_sysctls(policy_data.container_sysctls, [], "the runtime's container sysctls")

# A mount must match a rule of the container's volumes, of the runtime's
# fixed mounts, or of an allowance. Rules are grouped by destination, so
# only the rules for the mount's destination are tried. A rule is the
# part of the mount it fixes, in the request's field names ("match": the
# type), the option lists containerd and the runtime send there (e.g.
# nosuid, noexec, nodev for /proc; rbind, rprivate, ro for a read-only
# volume), and a regex of the source. object.subset(m, r.match) compares
# the type in one call; "in" finds the mount's options among the lists,
# each compared whole, so a host can neither drop nosuid, nodev or noexec
# nor add an option (genpolicy compares the lists with ==,
# rules.rego:1144-1155 at Kata 4.1.0). A mount without options matches no
# rule.
mount_matches(r, m) if {
	object.subset(m, r.match)
	m.options in r.options
	regex.match(r.source, m.source)
}

# The runtime's fixed mounts first: their sources are fixed too, so an
# exact mount is the whole mount (destination, type, source and one
# option list allowed), compared field by field, no regex. "else" stops
# at the first way that allows the mount.
exact_mount_ok(exact, m) if {
	some want in exact[m.destination]
	m.type_ == want.type_
	m.source == want.source
	m.options == want.options
}

mount_ok(c, m) if {
	exact_mount_ok(policy_data.exact_mounts, m)
} else := true if {
	some r in policy_data.mounts[m.destination]
	mount_matches(r, m)
} else := true if {
	some r in c.mounts[m.destination]
	mount_matches(r, m)
}

# The mounts the runtime's rules allow, whatever the container, by index
# in the request: worked out once per request, not once per candidate
# entry, and in one pass each without a function call per mount. The
# tables are bound first: a lookup in a local value is cheaper than one
# in policy_data, a rule. A fixed mount is found whole, with one "in": the
# request's mount object has exactly the four fields of the exact mount
# (the agent's Mount message), and a mount with any other field is
# missed here and decided by mount_ok, field by field.
runtime_mounts := {i |
	exact := policy_data.exact_mounts
	some i, m in input.OCI.Mounts
	m in exact[m.destination]
} | {i |
	rules := policy_data.mounts
	some i, m in input.OCI.Mounts
	some r in rules[m.destination]
	object.subset(m, r.match)
	m.options in r.options
	regex.match(r.source, m.source)
}

# A container without volumes needs no more than counting; otherwise
# each other mount must be one of its volumes (mount_ok, which also
# tries the runtime's rules again: the same verdict, only slower).
ok_mounts(c) if count(runtime_mounts) == count(input.OCI.Mounts)

ok_mounts(c) if not bad_mount(c)

bad_mount(c) if {
	some i, m in input.OCI.Mounts
	not i in runtime_mounts
	not mount_ok(c, m)
}

check_mounts(c) := "" if ok_mounts(c)
else := sprintf("OCI.Mounts: %s from %q (%s, %v) is not a volume of this container", [m.destination, m.source, m.type_, m.options]) if {
	m := [m | some m in input.OCI.Mounts; not mount_ok(c, m)][0]
}

ok_terminal(c) if input.OCI.Process.Terminal == c.tty

check_terminal(c) := "" if ok_terminal(c)
else := sprintf("OCI.Process.Terminal: got %v, want %v", [input.OCI.Process.Terminal, c.tty])

# containerd sets no host name on a workload container: it shares the
# sandbox's UTS namespace, whose name is the pod's.
ok_hostname if input.OCI.Hostname == ""

check_hostname := "" if ok_hostname
else := sprintf("OCI.Hostname: got %q, want \"\" (a container has its pod's host name)", [input.OCI.Hostname])

ok_pidns(c) if input.sandbox_pidns == c.share_pid

check_pidns(c) := "" if ok_pidns(c)
else := sprintf("sandbox_pidns: got %v, want %v (shareProcessNamespace)", [input.sandbox_pidns, c.share_pid])

# ---------------------------------------------------------------------------
# CreateSandbox: the pod's host name (no pod name comes with it: any pod of
# the policy), the runtime's sandbox_pidns and sandbox storages (the pod's
# /dev/shm), no guest hook path and no kernel module (the agent would load
# it). DNS lines and the sandbox id are the host's to choose.

default CreateSandboxRequest := false

CreateSandboxRequest if create_sandbox_allowed

CreateSandboxRequest := false if {
	not create_sandbox_allowed
	print(concat("; ", [p | some p in create_sandbox_problems; p != ""]))
}

create_sandbox_allowed if {
	input.sandbox_pidns == policy_data.create_sandbox.sandbox_pidns
	input.guest_hook_path == ""
	not some_kernel_module
	not bad_sandbox_storage
	some s in policy_data.sandboxes
	sandbox_hostname_ok(s, input.hostname)
}

create_sandbox_problems := [
	check_sandbox_request_hostname,
	check_sandbox_request_pidns,
	check_guest_hook_path,
	check_kernel_modules,
	check_sandbox_storages,
]

some_kernel_module if some _ in input.kernel_modules

# spec.hostname, else a pod name of the workload, or the kubelet's
# 63-character cut of a longer one.
sandbox_hostname_ok(s, h) if {
	s.hostname != ""
	h == s.hostname
}

sandbox_hostname_ok(s, h) if {
	s.hostname == ""
	regex.match(s.pod_name, h)
}

sandbox_hostname_ok(s, h) if {
	s.hostname_cut != ""
	count(h) <= 63
	startswith(h, s.hostname_cut)
	regex.match(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`, h)
}

check_sandbox_request_hostname := "" if {
	some s in policy_data.sandboxes
	sandbox_hostname_ok(s, input.hostname)
} else := sprintf("hostname: %q is not the host name of a pod of this policy (spec.hostname or the pod's name)", [input.hostname])

check_sandbox_request_pidns := "" if input.sandbox_pidns == policy_data.create_sandbox.sandbox_pidns
else := sprintf("sandbox_pidns: got %v, want %v (the runtime's)", [input.sandbox_pidns, policy_data.create_sandbox.sandbox_pidns])

check_guest_hook_path := "" if input.guest_hook_path == ""
else := sprintf("guest_hook_path: got %q, the policy allows no guest hooks", [input.guest_hook_path])

check_kernel_modules := "" if not some_kernel_module
else := sprintf("kernel_modules: got %v, the policy allows no kernel module", [[m.name | some m in input.kernel_modules]])

sandbox_storage_ok(s) if {
	some r in policy_data.create_sandbox.storages
	s.driver == r.driver
	s.source == r.source
	s.fstype == r.fstype
	regex.match(r.mount_point, s.mount_point)
	not bad_sandbox_storage_option(r, s)
}

bad_sandbox_storage_option(r, s) if {
	some o in s.options
	not regex.match(r.options, o)
}

bad_sandbox_storage if {
	some s in input.storages
	not sandbox_storage_ok(s)
}

check_sandbox_storages := "" if not bad_sandbox_storage
else := sprintf("storages: %s %q on %q (%s, %v) is not a sandbox storage of the runtime", [s.driver, s.source, s.mount_point, s.fstype, s.options]) if {
	s := [s | some s in input.storages; not sandbox_storage_ok(s)][0]
}

# ---------------------------------------------------------------------------
# ExecProcess: a command of a container's exec probes or lifecycle hooks,
# run as that container's own process. The rules keep no state, so the
# request's container id is not tied to an entry: the command must be one
# of an entry's, and the process that entry's.
#
# What the runtimes send: containerd runs the container's own process
# with other Args and Terminal, adding TERM=xterm with a terminal
# (internal/cri/server/container_execsync.go execInternal); the Go runtime
# passes on only Args, Env, the user's numbers, Cwd and Terminal
# (src/runtime/virtcontainers/kata_agent.go cmdToKataProcess), runtime-rs
# the whole process. So the container's environment, working directory,
# user and groups; no capability the container lacks; no string user,
# user name or SELinux label, no rlimit and no AppArmor profile but the
# runtime's; a terminal only where the pod spec gives the container a tty.
# NoNewPrivileges is not checked: true only takes privileges away.

default ExecProcessRequest := false

ExecProcessRequest if exec_allowed

ExecProcessRequest := false if {
	not exec_allowed
	print(concat("; ", exec_problems))
}

exec_candidates := [c |
	some cs in policy_data.containers
	some c in cs
	input.process.Args in c.exec
]

exec_allowed if {
	ok_string_user
	input.process.SelinuxLabel == ""
	input.process.ApparmorProfile in policy_data.apparmor_profiles
	exec_user.Username == ""
	not bad_exec_rlimit
	some c in exec_candidates
	exec_ok(c)
}

exec_ok(c) if {
	ok_exec_terminal(c)
	ok_exec_cwd(c)
	ok_exec_user(c)
	ok_exec_gids(c)
	ok_exec_caps(c)
	ok_exec_env(c)
}

# The request's user; {} when it has none, so every test of it fails.
exec_user := u if {
	u := input.process.User
	is_object(u)
} else := {}

bad_exec_rlimit if {
	some r in input.process.Rlimits
	not r in policy_data.rlimits
}

ok_exec_terminal(_) if input.process.Terminal == false

ok_exec_terminal(c) if c.tty

ok_exec_cwd(c) if c.cwd == ""

ok_exec_cwd(c) if input.process.Cwd == c.cwd

ok_exec_user(c) if {
	exec_user.UID == c.uid
	c.gid == null
}

ok_exec_user(c) if {
	exec_user.UID == c.uid
	exec_user.GID == c.gid
}

ok_exec_gids(c) if c.gids == null

ok_exec_gids(c) if {
	c.gids != null
	not bad_exec_gid(c)
}

bad_exec_gid(c) if {
	some g in exec_user.AdditionalGids
	not g in c.gids
}

# None (the Go runtime sends none) or the container's own (runtime-rs).
exec_caps := {cap |
	some k in cap_sets
	v := input.process.Capabilities[k]
	is_array(v)
	some cap in v
}

ok_exec_caps(c) if c.privileged

ok_exec_caps(c) if count(exec_caps - {x | some x in c.caps}) == 0

exec_env := {e | some e in input.process.Env}

# The container's environment, as CreateContainer checks it; with a
# terminal, containerd's TERM=xterm in place of the container's TERM.
ok_exec_env(c) if {
	not some_missing_exec_env(c)
	not some_unexpected_exec_env(c)
}

exec_term_env(e) if {
	input.process.Terminal == true
	startswith(e, "TERM=")
}

some_missing_exec_env(c) if {
	some e in c.env
	not e in exec_env
	not exec_term_env(e)
}

some_unexpected_exec_env(c) if {
	some e in exec_env - {e | some e in c.env}
	not exec_env_ok(c, e)
}

exec_env_ok(c, e) if extra_env_ok(c, e)

exec_env_ok(_, "TERM=xterm") if input.process.Terminal == true

# The first fields that differ, of the fields every exec is checked on
# and of the entry with that command that came closest.
exec_problems := ["process: none given"] if {
	not is_object(input.process)
} else := [sprintf("process.Args: %v is not an exec probe or lifecycle command of this pod", [input.process.Args])] if {
	count(exec_candidates) == 0
} else := [p |
	some p in [
		check_string_user,
		check_exec_selinux,
		check_exec_apparmor,
		check_exec_username,
		check_exec_rlimits,
		exec_closest,
	]
	p != ""
]

exec_candidate_problems := [exec_entry_problems(c) | some c in exec_candidates]

exec_closest := "" if {
	some ps in exec_candidate_problems
	count(ps) == 0
} else := [sprintf("container %q (%s): %s", [c.name, c.workload, concat("; ", ps)]) |
	some i, ps in exec_candidate_problems
	count(ps) == min({count(x) | some x in exec_candidate_problems})
	c := exec_candidates[i]
][0]

exec_entry_problems(c) := [p |
	some p in [
		check_exec_user(c),
		check_exec_gids(c),
		check_exec_cwd(c),
		check_exec_env(c),
		check_exec_caps(c),
		check_exec_terminal(c),
	]
	p != ""
]

check_exec_selinux := "" if input.process.SelinuxLabel == ""
else := sprintf("process.SelinuxLabel: got %q, an exec carries no label", [input.process.SelinuxLabel])

check_exec_apparmor := "" if input.process.ApparmorProfile in policy_data.apparmor_profiles
else := sprintf("process.ApparmorProfile: %q is not one of %v", [input.process.ApparmorProfile, policy_data.apparmor_profiles])

check_exec_username := "" if exec_user.Username == ""
else := sprintf("process.User.Username: got %v, the policy requires it empty (uid and gid are checked)", [object.get(exec_user, "Username", null)])

check_exec_rlimits := "" if not bad_exec_rlimit
else := sprintf("process.Rlimits: %v is not one of the runtime's rlimits %v", [[r | some r in input.process.Rlimits; not r in policy_data.rlimits][0], policy_data.rlimits])

check_exec_terminal(c) := "" if ok_exec_terminal(c)
else := "process.Terminal: got true, the pod spec gives the container no tty"

check_exec_cwd(c) := "" if ok_exec_cwd(c)
else := sprintf("process.Cwd: got %q, want the container's %q", [input.process.Cwd, c.cwd])

check_exec_user(c) := "" if ok_exec_user(c)
else := sprintf("process.User: got uid %v gid %v, want the container's uid %v gid %v", [object.get(exec_user, "UID", null), object.get(exec_user, "GID", null), c.uid, c.gid])

check_exec_gids(c) := "" if ok_exec_gids(c)
else := sprintf("process.User.AdditionalGids: %v is not within the container's %v", [exec_user.AdditionalGids, c.gids])

check_exec_caps(c) := "" if ok_exec_caps(c)
else := sprintf("process.Capabilities: %q is not one of the container's", [sort(exec_caps - {x | some x in c.caps})[0]])

check_exec_env(c) := "" if ok_exec_env(c)
else := sprintf("process.Env: unexpected %q", [e]) if {
	e := [e | some e in input.process.Env; not e in c.env; not exec_env_ok(c, e)][0]
} else := sprintf("process.Env: missing the container's %q", [[e | some e in c.env; not e in exec_env; not exec_term_env(e)][0]])

# ---------------------------------------------------------------------------
# CopyFile: only into the runtime's shared directory. On Kata's agent the
# policy is its only guard: it creates whatever the mode's type bits say
# (src/agent/src/rpc.rs do_copy_file, which tests them bit by bit, so a
# device or socket mode is made a directory), and a symlink it creates may
# point anywhere in the guest. The input's file_type is the mode's type
# (src/agent/policy/src/policy.rs FileType: Regular, Directory, Symlink,
# else Unknown); symlink_target is the link's text, null for other types.

default CopyFileRequest := false

CopyFileRequest if copy_file_allowed

CopyFileRequest := false if {
	not copy_file_allowed
	print(concat("; ", [p | some p in copy_file_problems; p != ""]))
}

copy_file_allowed if {
	ok_copy_path
	input.file_type in copy_file_types
	ok_copy_symlink
}

copy_file_problems := [check_copy_path, check_copy_file_type, check_copy_symlink]

# A ".." segment climbs out of the directory the path names (the name
# "..data" the Kubernetes atomic writer uses is no such segment).
dot_dot(p) if regex.match(`(^|/)\.\.(/|$)`, p)

ok_copy_path if {
	not dot_dot(input.path)
	some r in policy_data.copy_file
	regex.match(r, input.path)
}

check_copy_path := "" if ok_copy_path
else := sprintf("path: %q has a \"..\" segment", [input.path]) if {
	dot_dot(input.path)
} else := sprintf("path: %q is not a file the runtime shares with a container", [input.path])

copy_file_types := {"Regular", "Directory", "Symlink"}

check_copy_file_type := "" if input.file_type in copy_file_types
else := sprintf("file_type: %v: the runtime copies regular files, directories and symlinks only", [input.file_type])

ok_copy_symlink if input.file_type != "Symlink"

# A symlink only inside a shared file's directory: the top entries are
# mount sources, and a symlink there would bind whatever guest path it
# names. Its target relative and without "..": it stays inside that
# directory.
ok_copy_symlink if {
	input.file_type == "Symlink"
	regex.match(policy_data.copy_file_symlink, input.path)
	ok_symlink_target
}

ok_symlink_target if {
	is_string(input.symlink_target)
	not startswith(input.symlink_target, "/")
	not dot_dot(input.symlink_target)
}

check_copy_symlink := "" if ok_copy_symlink
else := sprintf("file_type: Symlink at %q, the top of a shared file (a mount source): only inside a shared directory", [input.path]) if {
	not regex.match(policy_data.copy_file_symlink, input.path)
} else := sprintf("symlink_target: %v is absolute or climbs with \"..\": a symlink stays inside its shared directory", [input.symlink_target])

# ---------------------------------------------------------------------------
# Networking: UpdateInterface, UpdateRoutes and AddARPNeighbors, when the
# settings list them in requests, set up the pod's interface, routes and
# static ARP entries as the host sees them, never the guest's loopback,
# which the agent's own services and guest components listen on. What is
# refused follows genpolicy (src/tools/genpolicy/rules.rego, the three
# rules, and the request_defaults of genpolicy-settings.json, 4.1.0): no
# interface named lo, no all-zero hardware address, no interface flag but
# IFF_NOARP (128); no route on lo or from a loopback source (we also refuse
# a loopback destination); no ARP entry on lo, for a loopback address or
# with a mask, none but reachable (NUD_REACHABLE 2) or permanent
# (NUD_PERMANENT 128) ones, and no flag but NTF_PROXY (8) and NTF_ROUTER
# (128). The Go runtime sends only permanent entries.

network_request(name) if name in policy_data.network_requests

# 127/8 (also IPv4-mapped), or ::1 however it is spelled; a prefix length
# may follow (a route's destination).
loopback_address(a) if regex.match(`^(::ffff:)?127\.[0-9.]+(/[0-9]+)?$`, a)

loopback_address(a) if regex.match(`^[0:]*:0{0,3}1(/[0-9]+)?$`, a)

default UpdateInterfaceRequest := false

UpdateInterfaceRequest if {
	network_request("UpdateInterfaceRequest")
	interface_ok
}

UpdateInterfaceRequest := false if {
	network_request("UpdateInterfaceRequest")
	not interface_ok
	print(interface_problem)
}

interface_ok if {
	is_object(input.interface)
	input.interface.name != "lo"
	input.interface.hwAddr != "00:00:00:00:00:00"
	input.interface.raw_flags in {0, 128}
}

interface_problem := "interface: none given" if {
	not is_object(input.interface)
} else := "interface.name: \"lo\" is the guest's loopback" if {
	input.interface.name == "lo"
} else := sprintf("interface.hwAddr: %q is no hardware address", [input.interface.hwAddr]) if {
	input.interface.hwAddr == "00:00:00:00:00:00"
} else := sprintf("interface.raw_flags: %v: only IFF_NOARP (128) may be set", [input.interface.raw_flags])

default UpdateRoutesRequest := false

UpdateRoutesRequest if {
	network_request("UpdateRoutesRequest")
	not some_bad_route
}

UpdateRoutesRequest := false if {
	network_request("UpdateRoutesRequest")
	some_bad_route
	print(route_problem)
}

bad_route(r) if r.device == "lo"

bad_route(r) if loopback_address(r.source)

bad_route(r) if loopback_address(r.dest)

some_bad_route if {
	some r in input.routes.Routes
	bad_route(r)
}

first_bad_route := [[i, r] | some i, r in input.routes.Routes; bad_route(r)][0]

route_problem := sprintf("routes.Routes[%d].device: \"lo\" is the guest's loopback", [i]) if {
	[i, r] := first_bad_route
	r.device == "lo"
} else := sprintf("routes.Routes[%d].source: %q is a loopback address", [i, r.source]) if {
	[i, r] := first_bad_route
	loopback_address(r.source)
} else := sprintf("routes.Routes[%d].dest: %q is a loopback address", [i, r.dest]) if {
	[i, r] := first_bad_route
}

default AddARPNeighborsRequest := false

AddARPNeighborsRequest if {
	network_request("AddARPNeighborsRequest")
	not some_bad_neighbor
}

AddARPNeighborsRequest := false if {
	network_request("AddARPNeighborsRequest")
	some_bad_neighbor
	print(neighbor_problem)
}

neighbor_ok(n) if {
	n.device != "lo"
	neighbor_address_ok(n.toIPAddress)
	n.state in {2, 128}
	n.flags in {0, 8, 128, 136}
}

neighbor_address_ok(a) if {
	is_object(a)
	a.mask == ""
	not loopback_address(a.address)
}

some_bad_neighbor if {
	some n in input.neighbors.ARPNeighbors
	not neighbor_ok(n)
}

neighbor_problem := sprintf("neighbors.ARPNeighbors[%d].device: \"lo\" is the guest's loopback", [i]) if {
	[i, n] := first_bad_neighbor
	n.device == "lo"
} else := sprintf("neighbors.ARPNeighbors[%d].toIPAddress: %v is a loopback address, has a mask or is missing", [i, n.toIPAddress]) if {
	[i, n] := first_bad_neighbor
	not neighbor_address_ok(n.toIPAddress)
} else := sprintf("neighbors.ARPNeighbors[%d].state: %v is neither reachable (2) nor permanent (128)", [i, n.state]) if {
	[i, n] := first_bad_neighbor
	not n.state in {2, 128}
} else := sprintf("neighbors.ARPNeighbors[%d].flags: %v: only NTF_PROXY (8) and NTF_ROUTER (128) may be set", [i, n.flags]) if {
	[i, n] := first_bad_neighbor
}

first_bad_neighbor := [[i, n] | some i, n in input.neighbors.ARPNeighbors; not neighbor_ok(n)][0]

# A generated policy cannot be replaced from the host.
default SetPolicyRequest := false
