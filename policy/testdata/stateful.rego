# A small policy in the style genpolicy generates (Rego v0 with future
# keywords, state kept in data.pstate through JSON Patch ops), written for
# cocoon's tests: the first CreateContainer pins the sandbox name, each
# created container id is bound to its policy_data index, exec is allowed
# only into known containers with listed commands, RemoveContainer forgets
# the container.
package agent_policy

import future.keywords.in
import future.keywords.every

default CreateContainerRequest := {"allowed": false}
default RemoveContainerRequest := {"allowed": false}
default ExecProcessRequest := false
default StartContainerRequest := true
default SetPolicyRequest := false
default ReadStreamRequest := false

CreateContainerRequest := {"ops": ops, "allowed": true} {
	name := input.OCI.Annotations["io.kubernetes.cri.sandbox-name"]
	pin := state_allows("sandbox_name", name)
	some idx, c in policy_data.containers
	input.OCI.Process.Args == c.args
	print("CreateContainerRequest: matched container", idx)
	bind := state_allows(input.container_id, idx)
	ops := concat_op_if_not_null(concat_op_if_not_null([], pin), bind)
}

RemoveContainerRequest := {"ops": ops, "allowed": true} {
	ops := concat_op_if_not_null([], state_del_key(input.container_id))
}

ExecProcessRequest {
	idx := data.pstate[input.container_id]
	c := policy_data.containers[idx]
	input.process.Args in c.exec
}

ExecProcessRequest = false {
	not data.pstate[input.container_id]
	print("ExecProcessRequest: unknown container", input.container_id)
}

state_allows(key, value) = action {
	not data.pstate[key]
	action := {"op": "add", "path": concat("/", ["/pstate", key]), "value": value}
}

state_allows(key, value) = action {
	data.pstate[key] == value
	action := null
}

state_del_key(key) = action {
	data.pstate[key]
	action := {"op": "remove", "path": concat("/", ["/pstate", key])}
}

state_del_key(key) = action {
	not data.pstate[key]
	action := null
}

concat_op_if_not_null(ops, op) = result {
	op == null
	result := ops
}

concat_op_if_not_null(ops, op) = result {
	op != null
	result := array.concat(ops, [op])
}

policy_data := {
	"containers": [
		{"args": ["/pause"], "exec": []},
		{"args": ["/bin/sh", "-c", "sleep 3600"], "exec": [["/bin/ls"], ["/bin/date"]]},
	],
}
