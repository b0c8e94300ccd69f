# cocoon policy: coco-default.
#
# The built-in default in confidential mode when no other policy is supplied.
# It keeps the pod's data away from the host while letting the pod run:
#   - ExecProcess is denied (no commands injected into containers);
#   - ReadStream is denied (container output is not revealed; the agent still
#     drains the pipes and answers the host with end-of-file);
#   - GetMetrics is denied (guest metrics can leak workload behaviour);
#   - GetDiagnosticData is denied (it returns a file of the guest: the
#     termination message; Kata's generated policies deny it too);
#   - SetPolicy is denied (the attested policy cannot be swapped at run time).
# Everything else the Kata runtime needs to run a pod is allowed. Replace it
# with a generated policy delivered through initdata for real workloads.
#
# With the owner's keys in initdata (cocoon.toml, docs/observability.md) it
# also allows what reveals nothing to the host: reading a container's sealed
# output, running an owner-signed exec grant the agent has verified (each
# once) and reading that exec's output, and the aggregate metrics.

package agent_policy

default AddARPNeighborsRequest := true
default AddSwapPathRequest := true
default AddSwapRequest := true
default CloseStdinRequest := true
default CopyFileRequest := true
default CreateContainerRequest := true
default CreateSandboxRequest := true
default DestroySandboxRequest := true
default ExecProcessRequest := false
default GetDiagnosticDataRequest := false
default GetIPTablesRequest := true
default GetMetricsRequest := false
default GetOOMEventRequest := true
default GuestDetailsRequest := true
default ListInterfacesRequest := true
default ListRoutesRequest := true
default MemAgentCompactConfig := true
default MemAgentMemcgConfig := true
default MemHotplugByProbeRequest := true
default OnlineCPUMemRequest := true
default PauseContainerRequest := true
default ReadStreamRequest := false
default RemoveContainerRequest := true
default RemoveStaleVirtiofsShareMountsRequest := true
default ReseedRandomDevRequest := true
default ResizeVolumeRequest := true
default ResumeContainerRequest := true
default SetGuestDateTimeRequest := true
default SetIPTablesRequest := true
default SetPolicyRequest := false
default SignalProcessRequest := true
default StartContainerRequest := true
default StatsContainerRequest := true
default TtyWinResizeRequest := true
default UpdateContainerRequest := true
default UpdateEphemeralMountsRequest := true
default UpdateInterfaceRequest := true
default UpdateRoutesRequest := true
default VolumeStatsRequest := true
default WaitProcessRequest := true
default WriteStreamRequest := true

ReadStreamRequest if input.cocoon_logs == "seal"

ReadStreamRequest if input.cocoon_logs == "exec-grant"

ExecProcessRequest if input.cocoon_exec_grant.verified == true

GetMetricsRequest if input.cocoon_metrics == "aggregate"
