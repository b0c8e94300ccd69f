# A policy shaped like genpolicy output, written for cocoon's explain tests:
# Rego v0 with future keywords, a CreateContainerRequest rule that tries
# every policy_data.containers entry (an OCI spec with genpolicy's $(...)
# placeholders and regular expressions) and records the matching index in
# data.pstate, ExecProcess limited to listed commands.
package agent_policy

import future.keywords.in
import future.keywords.every
import future.keywords.if

default CreateContainerRequest := {"allowed": false}
default ExecProcessRequest := false
default StartContainerRequest := true
default ReadStreamRequest := false

CreateContainerRequest := {"ops": ops, "allowed": true} if {
	is_null(input.string_user)
	is_null(input.OCI.Hooks)
	some idx, p in policy_data.containers
	p.sandbox_pidns == input.sandbox_pidns
	p_oci := p.OCI
	i_oci := input.OCI
	p_oci.Version == i_oci.Version
	allow_annotations(p_oci, i_oci)
	allow_mounts(p_oci, i_oci)
	allow_args(p_oci.Process, i_oci.Process)
	p_oci.Process.Cwd == i_oci.Process.Cwd
	p_oci.Process.User.UID == i_oci.Process.User.UID
	allow_env(p_oci.Process, i_oci.Process)
	ops := [{"op": "add", "path": concat("/", ["/pstate", input.container_id]), "value": idx}]
}

allow_annotations(p_oci, i_oci) if {
	every key in ["io.kubernetes.cri.container-type", "io.kubernetes.cri.container-name", "io.kubernetes.cri.image-name"] {
		object.get(p_oci.Annotations, key, "") == object.get(i_oci.Annotations, key, "")
	}
	every key, _ in i_oci.Annotations {
		allow_annotation_key(p_oci, key)
	}
}

allow_annotation_key(p_oci, key) if startswith(key, "io.kubernetes.cri.")
allow_annotation_key(p_oci, key) if p_oci.Annotations[key]

allow_mounts(p_oci, i_oci) if {
	every i_mount in i_oci.Mounts {
		some p_mount in p_oci.Mounts
		p_mount.destination == i_mount.destination
		p_mount.type_ == i_mount.type_
		regex.match(replace(p_mount.source, "$(sfprefix)", "^/run/kata-containers/shared/containers/[a-z0-9]+-[a-z0-9]+-"), i_mount.source)
	}
}

allow_args(p_process, i_process) if {
	count(p_process.Args) == count(i_process.Args)
	every i, arg in i_process.Args {
		p_process.Args[i] == arg
	}
}

allow_env(p_process, i_process) if {
	every v in i_process.Env {
		allow_var(p_process, v)
	}
}

allow_var(p_process, v) if v in p_process.Env
allow_var(p_process, v) if {
	some p_var in p_process.Env
	regex.match(concat("", ["^", replace(p_var, "$(sandbox-name)", "[a-z0-9-]+"), "$"]), v)
}

ExecProcessRequest if {
	idx := data.pstate[input.container_id]
	input.process.Args in policy_data.containers[idx].exec_commands
}

policy_data := {
	"containers": [
		{
			"sandbox_pidns": false,
			"exec_commands": [],
			"storages": [],
			"devices": [],
			"OCI": {
				"Version": "1.1.0",
				"Annotations": {
					"io.kubernetes.cri.container-type": "sandbox",
					"io.kubernetes.cri.sandbox-name": "^[a-z0-9-]+$",
				},
				"Process": {"Args": ["/pause"], "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"], "Cwd": "/", "User": {"UID": 65535, "GID": 65535, "AdditionalGids": []}},
				"Mounts": [],
			},
		},
		{
			"sandbox_pidns": false,
			"exec_commands": [["/bin/date"]],
			"storages": [],
			"devices": [],
			"OCI": {
				"Version": "1.1.0",
				"Annotations": {
					"io.kubernetes.cri.container-type": "container",
					"io.kubernetes.cri.container-name": "app",
					"io.kubernetes.cri.image-name": "docker.io/library/busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
					"io.kubernetes.cri.sandbox-name": "^[a-z0-9-]+$",
					"example.com/allowed": "",
				},
				"Process": {
					"Args": ["/bin/echo", "hello"],
					"Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "POD_NAME=$(sandbox-name)"],
					"Cwd": "/",
					"User": {"UID": 1000, "GID": 1000, "AdditionalGids": []},
				},
				"Mounts": [
					{"destination": "/etc/hosts", "type_": "bind", "source": "$(sfprefix)hosts$", "options": ["rbind", "ro"]},
				],
			},
		},
	],
}
