package protocols_test

// The tables in this file were derived from the Kata Containers 4.1.0 agent
// protos (src/libs/protocols/protos/{agent,oci,types,health,csi}.proto)
// independently of protocols/protos, so that any drift of our definitions
// from Kata's wire contract makes this test fail.

import (
	"fmt"
	"sort"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/cocoon-tee/cocoon/protocols/agentpb"
	"github.com/cocoon-tee/cocoon/protocols/typespb"
)

// wantField describes one field: kind is a scalar kind name,
// "message:<full name>", "enum:<full name>" or "map<K,V>"; label is "",
// "repeated", "optional" (proto3 explicit presence) or "oneof:<name>".
type wantField struct {
	name  string
	num   int32
	kind  string
	label string
}

type wantRPC struct {
	name   string
	input  string
	output string
}

// wantFiles maps each generated file descriptor to its proto package.
func wantFiles() map[protoreflect.FileDescriptor]string {
	return map[protoreflect.FileDescriptor]string{
		agentpb.File_agent_proto:  "grpc",
		agentpb.File_oci_proto:    "grpc",
		agentpb.File_health_proto: "grpc",
		agentpb.File_csi_proto:    "grpc",
		typespb.File_types_proto:  "types",
	}
}

var kataMessages = map[string][]wantField{
	"grpc.ARPNeighbors": {
		{"ARPNeighbors", 1, "message:types.ARPNeighbor", "repeated"},
	},
	"grpc.AddARPNeighborsRequest": {
		{"neighbors", 1, "message:grpc.ARPNeighbors", ""},
	},
	"grpc.AddSwapPathRequest": {
		{"path", 1, "string", ""},
	},
	"grpc.AddSwapRequest": {
		{"PCIPath", 1, "uint32", "repeated"},
	},
	"grpc.AgentDetails": {
		{"version", 1, "string", ""},
		{"init_daemon", 2, "bool", ""},
		{"device_handlers", 3, "string", "repeated"},
		{"storage_handlers", 4, "string", "repeated"},
		{"supports_seccomp", 5, "bool", ""},
		{"extra_features", 6, "string", "repeated"},
	},
	"grpc.BlkioStats": {
		{"io_service_bytes_recursive", 1, "message:grpc.BlkioStatsEntry", "repeated"},
		{"io_serviced_recursive", 2, "message:grpc.BlkioStatsEntry", "repeated"},
		{"io_queued_recursive", 3, "message:grpc.BlkioStatsEntry", "repeated"},
		{"io_service_time_recursive", 4, "message:grpc.BlkioStatsEntry", "repeated"},
		{"io_wait_time_recursive", 5, "message:grpc.BlkioStatsEntry", "repeated"},
		{"io_merged_recursive", 6, "message:grpc.BlkioStatsEntry", "repeated"},
		{"io_time_recursive", 7, "message:grpc.BlkioStatsEntry", "repeated"},
		{"sectors_recursive", 8, "message:grpc.BlkioStatsEntry", "repeated"},
	},
	"grpc.BlkioStatsEntry": {
		{"major", 1, "uint64", ""},
		{"minor", 2, "uint64", ""},
		{"op", 3, "string", ""},
		{"value", 4, "uint64", ""},
	},
	"grpc.Box": {
		{"Height", 1, "uint32", ""},
		{"Width", 2, "uint32", ""},
	},
	"grpc.CgroupStats": {
		{"cpu_stats", 1, "message:grpc.CpuStats", ""},
		{"memory_stats", 2, "message:grpc.MemoryStats", ""},
		{"pids_stats", 3, "message:grpc.PidsStats", ""},
		{"blkio_stats", 4, "message:grpc.BlkioStats", ""},
		{"hugetlb_stats", 5, "map<string,message:grpc.HugetlbStats>", "repeated"},
	},
	"grpc.CheckRequest": {
		{"service", 1, "string", ""},
	},
	"grpc.CloseStdinRequest": {
		{"container_id", 1, "string", ""},
		{"exec_id", 2, "string", ""},
	},
	"grpc.CopyFileRequest": {
		{"path", 1, "string", ""},
		{"file_size", 2, "int64", ""},
		{"file_mode", 3, "uint32", ""},
		{"dir_mode", 4, "uint32", ""},
		{"uid", 5, "int32", ""},
		{"gid", 6, "int32", ""},
		{"offset", 7, "int64", ""},
		{"data", 8, "bytes", ""},
	},
	"grpc.CpuStats": {
		{"cpu_usage", 1, "message:grpc.CpuUsage", ""},
		{"throttling_data", 2, "message:grpc.ThrottlingData", ""},
	},
	"grpc.CpuUsage": {
		{"total_usage", 1, "uint64", ""},
		{"percpu_usage", 2, "uint64", "repeated"},
		{"usage_in_kernelmode", 3, "uint64", ""},
		{"usage_in_usermode", 4, "uint64", ""},
	},
	"grpc.CreateContainerRequest": {
		{"container_id", 1, "string", ""},
		{"exec_id", 2, "string", ""},
		{"string_user", 3, "message:grpc.StringUser", ""},
		{"devices", 4, "message:grpc.Device", "repeated"},
		{"storages", 5, "message:grpc.Storage", "repeated"},
		{"OCI", 6, "message:grpc.Spec", ""},
		{"sandbox_pidns", 7, "bool", ""},
		{"shared_mounts", 8, "message:grpc.SharedMount", "repeated"},
		{"stdin_port", 9, "uint32", ""},
		{"stdout_port", 10, "uint32", ""},
		{"stderr_port", 11, "uint32", ""},
	},
	"grpc.CreateSandboxRequest": {
		{"hostname", 1, "string", ""},
		{"dns", 2, "string", "repeated"},
		{"storages", 3, "message:grpc.Storage", "repeated"},
		{"sandbox_pidns", 4, "bool", ""},
		{"sandbox_id", 5, "string", ""},
		{"guest_hook_path", 6, "string", ""},
		{"kernel_modules", 7, "message:grpc.KernelModule", "repeated"},
	},
	"grpc.DestroySandboxRequest": {},
	"grpc.Device": {
		{"id", 1, "string", ""},
		{"type", 2, "string", ""},
		{"vm_path", 3, "string", ""},
		{"container_path", 4, "string", ""},
		{"options", 5, "string", "repeated"},
	},
	"grpc.ExecProcessRequest": {
		{"container_id", 1, "string", ""},
		{"exec_id", 2, "string", ""},
		{"string_user", 3, "message:grpc.StringUser", ""},
		{"process", 4, "message:grpc.Process", ""},
		{"stdin_port", 5, "uint32", ""},
		{"stdout_port", 6, "uint32", ""},
		{"stderr_port", 7, "uint32", ""},
	},
	"grpc.FSGroup": {
		{"group_id", 2, "uint32", ""},
		{"group_change_policy", 3, "enum:types.FSGroupChangePolicy", ""},
	},
	"grpc.GetDiagnosticDataRequest": {
		{"log_type", 1, "string", ""},
		{"container_id", 2, "string", ""},
	},
	"grpc.GetDiagnosticDataResponse": {
		{"data", 1, "string", ""},
	},
	"grpc.GetIPTablesRequest": {
		{"is_ipv6", 1, "bool", ""},
	},
	"grpc.GetIPTablesResponse": {
		{"data", 1, "bytes", ""},
	},
	"grpc.GetMetricsRequest":  {},
	"grpc.GetOOMEventRequest": {},
	"grpc.GuestDetailsRequest": {
		{"mem_block_size", 1, "bool", ""},
		{"mem_hotplug_probe", 2, "bool", ""},
	},
	"grpc.GuestDetailsResponse": {
		{"mem_block_size_bytes", 1, "uint64", ""},
		{"agent_details", 2, "message:grpc.AgentDetails", ""},
		{"support_mem_hotplug_probe", 3, "bool", ""},
	},
	"grpc.HealthCheckResponse": {
		{"status", 1, "enum:grpc.HealthCheckResponse.ServingStatus", ""},
	},
	"grpc.Hook": {
		{"Path", 1, "string", ""},
		{"Args", 2, "string", "repeated"},
		{"Env", 3, "string", "repeated"},
		{"Timeout", 4, "int64", ""},
	},
	"grpc.Hooks": {
		{"Prestart", 1, "message:grpc.Hook", "repeated"},
		{"Poststart", 2, "message:grpc.Hook", "repeated"},
		{"Poststop", 3, "message:grpc.Hook", "repeated"},
		{"CreateRuntime", 4, "message:grpc.Hook", "repeated"},
		{"CreateContainer", 5, "message:grpc.Hook", "repeated"},
		{"StartContainer", 6, "message:grpc.Hook", "repeated"},
	},
	"grpc.HugetlbStats": {
		{"usage", 1, "uint64", ""},
		{"max_usage", 2, "uint64", ""},
		{"failcnt", 3, "uint64", ""},
	},
	"grpc.Interfaces": {
		{"Interfaces", 1, "message:types.Interface", "repeated"},
	},
	"grpc.KernelModule": {
		{"name", 1, "string", ""},
		{"parameters", 2, "string", "repeated"},
	},
	"grpc.Linux": {
		{"UIDMappings", 1, "message:grpc.LinuxIDMapping", "repeated"},
		{"GIDMappings", 2, "message:grpc.LinuxIDMapping", "repeated"},
		{"Sysctl", 3, "map<string,string>", "repeated"},
		{"Resources", 4, "message:grpc.LinuxResources", ""},
		{"CgroupsPath", 5, "string", ""},
		{"Namespaces", 6, "message:grpc.LinuxNamespace", "repeated"},
		{"Devices", 7, "message:grpc.LinuxDevice", "repeated"},
		{"Seccomp", 8, "message:grpc.LinuxSeccomp", ""},
		{"RootfsPropagation", 9, "string", ""},
		{"MaskedPaths", 10, "string", "repeated"},
		{"ReadonlyPaths", 11, "string", "repeated"},
		{"MountLabel", 12, "string", ""},
		{"IntelRdt", 13, "message:grpc.LinuxIntelRdt", ""},
	},
	"grpc.LinuxBlockIO": {
		{"Weight", 1, "uint32", ""},
		{"LeafWeight", 2, "uint32", ""},
		{"WeightDevice", 3, "message:grpc.LinuxWeightDevice", "repeated"},
		{"ThrottleReadBpsDevice", 4, "message:grpc.LinuxThrottleDevice", "repeated"},
		{"ThrottleWriteBpsDevice", 5, "message:grpc.LinuxThrottleDevice", "repeated"},
		{"ThrottleReadIOPSDevice", 6, "message:grpc.LinuxThrottleDevice", "repeated"},
		{"ThrottleWriteIOPSDevice", 7, "message:grpc.LinuxThrottleDevice", "repeated"},
	},
	"grpc.LinuxCPU": {
		{"Shares", 1, "uint64", ""},
		{"Quota", 2, "int64", ""},
		{"Period", 3, "uint64", ""},
		{"RealtimeRuntime", 4, "int64", ""},
		{"RealtimePeriod", 5, "uint64", ""},
		{"Cpus", 6, "string", ""},
		{"Mems", 7, "string", ""},
	},
	"grpc.LinuxCapabilities": {
		{"Bounding", 1, "string", "repeated"},
		{"Effective", 2, "string", "repeated"},
		{"Inheritable", 3, "string", "repeated"},
		{"Permitted", 4, "string", "repeated"},
		{"Ambient", 5, "string", "repeated"},
	},
	"grpc.LinuxDevice": {
		{"Path", 1, "string", ""},
		{"Type", 2, "string", ""},
		{"Major", 3, "int64", ""},
		{"Minor", 4, "int64", ""},
		{"FileMode", 5, "uint32", ""},
		{"UID", 6, "uint32", ""},
		{"GID", 7, "uint32", ""},
	},
	"grpc.LinuxDeviceCgroup": {
		{"Allow", 1, "bool", ""},
		{"Type", 2, "string", ""},
		{"Major", 3, "int64", ""},
		{"Minor", 4, "int64", ""},
		{"Access", 5, "string", ""},
	},
	"grpc.LinuxHugepageLimit": {
		{"Pagesize", 1, "string", ""},
		{"Limit", 2, "uint64", ""},
	},
	"grpc.LinuxIDMapping": {
		{"HostID", 1, "uint32", ""},
		{"ContainerID", 2, "uint32", ""},
		{"Size", 3, "uint32", ""},
	},
	"grpc.LinuxIntelRdt": {
		{"L3CacheSchema", 1, "string", ""},
	},
	"grpc.LinuxInterfacePriority": {
		{"Name", 1, "string", ""},
		{"Priority", 2, "uint32", ""},
	},
	"grpc.LinuxMemory": {
		{"Limit", 1, "int64", ""},
		{"Reservation", 2, "int64", ""},
		{"Swap", 3, "int64", ""},
		{"Kernel", 4, "int64", ""},
		{"KernelTCP", 5, "int64", ""},
		{"Swappiness", 6, "uint64", ""},
		{"DisableOOMKiller", 7, "bool", ""},
	},
	"grpc.LinuxNamespace": {
		{"Type", 1, "string", ""},
		{"Path", 2, "string", ""},
	},
	"grpc.LinuxNetwork": {
		{"ClassID", 1, "uint32", ""},
		{"Priorities", 2, "message:grpc.LinuxInterfacePriority", "repeated"},
	},
	"grpc.LinuxPids": {
		{"Limit", 1, "int64", ""},
	},
	"grpc.LinuxResources": {
		{"Devices", 1, "message:grpc.LinuxDeviceCgroup", "repeated"},
		{"Memory", 2, "message:grpc.LinuxMemory", ""},
		{"CPU", 3, "message:grpc.LinuxCPU", ""},
		{"Pids", 4, "message:grpc.LinuxPids", ""},
		{"BlockIO", 5, "message:grpc.LinuxBlockIO", ""},
		{"HugepageLimits", 6, "message:grpc.LinuxHugepageLimit", "repeated"},
		{"Network", 7, "message:grpc.LinuxNetwork", ""},
	},
	"grpc.LinuxSeccomp": {
		{"DefaultAction", 1, "string", ""},
		{"Architectures", 2, "string", "repeated"},
		{"Flags", 3, "string", "repeated"},
		{"Syscalls", 4, "message:grpc.LinuxSyscall", "repeated"},
	},
	"grpc.LinuxSeccompArg": {
		{"Index", 1, "uint64", ""},
		{"Value", 2, "uint64", ""},
		{"ValueTwo", 3, "uint64", ""},
		{"Op", 4, "string", ""},
	},
	"grpc.LinuxSyscall": {
		{"Names", 1, "string", "repeated"},
		{"Action", 2, "string", ""},
		{"errnoret", 3, "uint32", "oneof:ErrnoRet"},
		{"Args", 4, "message:grpc.LinuxSeccompArg", "repeated"},
	},
	"grpc.LinuxThrottleDevice": {
		{"Major", 1, "int64", ""},
		{"Minor", 2, "int64", ""},
		{"Rate", 3, "uint64", ""},
	},
	"grpc.LinuxWeightDevice": {
		{"Major", 1, "int64", ""},
		{"Minor", 2, "int64", ""},
		{"Weight", 3, "uint32", ""},
		{"LeafWeight", 4, "uint32", ""},
	},
	"grpc.ListInterfacesRequest": {},
	"grpc.ListRoutesRequest":     {},
	"grpc.MemAgentCompactConfig": {
		{"disabled", 1, "bool", "optional"},
		{"period_secs", 2, "uint64", "optional"},
		{"period_psi_percent_limit", 3, "uint32", "optional"},
		{"compact_psi_percent_limit", 4, "uint32", "optional"},
		{"compact_sec_max", 5, "int64", "optional"},
		{"compact_order", 6, "uint32", "optional"},
		{"compact_threshold", 7, "uint64", "optional"},
		{"compact_force_times", 8, "uint64", "optional"},
	},
	"grpc.MemAgentMemcgConfig": {
		{"disabled", 1, "bool", "optional"},
		{"swap", 2, "bool", "optional"},
		{"swappiness_max", 3, "uint32", "optional"},
		{"period_secs", 4, "uint64", "optional"},
		{"period_psi_percent_limit", 5, "uint32", "optional"},
		{"eviction_psi_percent_limit", 6, "uint32", "optional"},
		{"eviction_run_aging_count_min", 7, "uint64", "optional"},
	},
	"grpc.MemHotplugByProbeRequest": {
		{"memHotplugProbeAddr", 1, "uint64", "repeated"},
	},
	"grpc.MemoryData": {
		{"usage", 1, "uint64", ""},
		{"max_usage", 2, "uint64", ""},
		{"failcnt", 3, "uint64", ""},
		{"limit", 4, "uint64", ""},
	},
	"grpc.MemoryStats": {
		{"cache", 1, "uint64", ""},
		{"usage", 2, "message:grpc.MemoryData", ""},
		{"swap_usage", 3, "message:grpc.MemoryData", ""},
		{"kernel_usage", 4, "message:grpc.MemoryData", ""},
		{"use_hierarchy", 5, "bool", ""},
		{"stats", 6, "map<string,uint64>", "repeated"},
	},
	"grpc.Metrics": {
		{"metrics", 1, "string", ""},
	},
	"grpc.Mount": {
		{"destination", 1, "string", ""},
		{"source", 2, "string", ""},
		{"type", 3, "string", ""},
		{"options", 4, "string", "repeated"},
	},
	"grpc.NetworkStats": {
		{"name", 1, "string", ""},
		{"rx_bytes", 2, "uint64", ""},
		{"rx_packets", 3, "uint64", ""},
		{"rx_errors", 4, "uint64", ""},
		{"rx_dropped", 5, "uint64", ""},
		{"tx_bytes", 6, "uint64", ""},
		{"tx_packets", 7, "uint64", ""},
		{"tx_errors", 8, "uint64", ""},
		{"tx_dropped", 9, "uint64", ""},
	},
	"grpc.OOMEvent": {
		{"container_id", 1, "string", ""},
	},
	"grpc.OnlineCPUMemRequest": {
		{"wait", 1, "bool", ""},
		{"nb_cpus", 2, "uint32", ""},
		{"cpu_only", 3, "bool", ""},
	},
	"grpc.POSIXRlimit": {
		{"Type", 1, "string", ""},
		{"Hard", 2, "uint64", ""},
		{"Soft", 3, "uint64", ""},
	},
	"grpc.PauseContainerRequest": {
		{"container_id", 1, "string", ""},
	},
	"grpc.PidsStats": {
		{"current", 1, "uint64", ""},
		{"limit", 2, "uint64", ""},
	},
	"grpc.Process": {
		{"Terminal", 1, "bool", ""},
		{"ConsoleSize", 2, "message:grpc.Box", ""},
		{"User", 3, "message:grpc.User", ""},
		{"Args", 4, "string", "repeated"},
		{"Env", 5, "string", "repeated"},
		{"Cwd", 6, "string", ""},
		{"Capabilities", 7, "message:grpc.LinuxCapabilities", ""},
		{"Rlimits", 8, "message:grpc.POSIXRlimit", "repeated"},
		{"NoNewPrivileges", 9, "bool", ""},
		{"ApparmorProfile", 10, "string", ""},
		{"OOMScoreAdj", 11, "int64", ""},
		{"SelinuxLabel", 12, "string", ""},
	},
	"grpc.ReadStreamRequest": {
		{"container_id", 1, "string", ""},
		{"exec_id", 2, "string", ""},
		{"len", 3, "uint32", ""},
	},
	"grpc.ReadStreamResponse": {
		{"data", 1, "bytes", ""},
	},
	"grpc.RemoveContainerRequest": {
		{"container_id", 1, "string", ""},
		{"timeout", 2, "uint32", ""},
	},
	"grpc.RemoveStaleVirtiofsShareMountsRequest": {},
	"grpc.ReseedRandomDevRequest": {
		{"data", 2, "bytes", ""},
	},
	"grpc.ResizeVolumeRequest": {
		{"volume_guest_path", 1, "string", ""},
		{"size", 2, "uint64", ""},
	},
	"grpc.ResumeContainerRequest": {
		{"container_id", 1, "string", ""},
	},
	"grpc.Root": {
		{"Path", 1, "string", ""},
		{"Readonly", 2, "bool", ""},
	},
	"grpc.Routes": {
		{"Routes", 1, "message:types.Route", "repeated"},
	},
	"grpc.SetGuestDateTimeRequest": {
		{"Sec", 1, "int64", ""},
		{"Usec", 2, "int64", ""},
	},
	"grpc.SetIPTablesRequest": {
		{"is_ipv6", 1, "bool", ""},
		{"data", 2, "bytes", ""},
	},
	"grpc.SetIPTablesResponse": {
		{"data", 1, "bytes", ""},
	},
	"grpc.SetPolicyRequest": {
		{"policy", 1, "string", ""},
	},
	"grpc.SharedMount": {
		{"name", 1, "string", ""},
		{"src_ctr", 2, "string", ""},
		{"src_path", 3, "string", ""},
		{"dst_ctr", 4, "string", ""},
		{"dst_path", 5, "string", ""},
	},
	"grpc.SignalProcessRequest": {
		{"container_id", 1, "string", ""},
		{"exec_id", 2, "string", ""},
		{"signal", 3, "uint32", ""},
	},
	"grpc.Solaris": {
		{"dummy", 1, "string", ""},
	},
	"grpc.Spec": {
		{"Version", 1, "string", ""},
		{"Process", 2, "message:grpc.Process", ""},
		{"Root", 3, "message:grpc.Root", ""},
		{"Hostname", 4, "string", ""},
		{"Mounts", 5, "message:grpc.Mount", "repeated"},
		{"Hooks", 6, "message:grpc.Hooks", ""},
		{"Annotations", 7, "map<string,string>", "repeated"},
		{"Linux", 8, "message:grpc.Linux", ""},
		{"Solaris", 9, "message:grpc.Solaris", ""},
		{"Windows", 10, "message:grpc.Windows", ""},
	},
	"grpc.StartContainerRequest": {
		{"container_id", 1, "string", ""},
	},
	"grpc.StatsContainerRequest": {
		{"container_id", 1, "string", ""},
	},
	"grpc.StatsContainerResponse": {
		{"cgroup_stats", 1, "message:grpc.CgroupStats", ""},
		{"network_stats", 2, "message:grpc.NetworkStats", "repeated"},
	},
	"grpc.Storage": {
		{"driver", 1, "string", ""},
		{"driver_options", 2, "string", "repeated"},
		{"source", 3, "string", ""},
		{"fstype", 4, "string", ""},
		{"options", 5, "string", "repeated"},
		{"mount_point", 6, "string", ""},
		{"fs_group", 7, "message:grpc.FSGroup", ""},
		{"shared", 8, "bool", ""},
	},
	"grpc.StringUser": {
		{"uid", 1, "string", ""},
		{"gid", 2, "string", ""},
		{"additionalGids", 3, "string", "repeated"},
	},
	"grpc.ThrottlingData": {
		{"periods", 1, "uint64", ""},
		{"throttled_periods", 2, "uint64", ""},
		{"throttled_time", 3, "uint64", ""},
	},
	"grpc.TtyWinResizeRequest": {
		{"container_id", 1, "string", ""},
		{"exec_id", 2, "string", ""},
		{"row", 3, "uint32", ""},
		{"column", 4, "uint32", ""},
	},
	"grpc.UpdateContainerRequest": {
		{"container_id", 1, "string", ""},
		{"resources", 2, "message:grpc.LinuxResources", ""},
	},
	"grpc.UpdateEphemeralMountsRequest": {
		{"storages", 1, "message:grpc.Storage", "repeated"},
	},
	"grpc.UpdateInterfaceRequest": {
		{"interface", 1, "message:types.Interface", ""},
	},
	"grpc.UpdateRoutesRequest": {
		{"routes", 1, "message:grpc.Routes", ""},
	},
	"grpc.User": {
		{"UID", 1, "uint32", ""},
		{"GID", 2, "uint32", ""},
		{"AdditionalGids", 3, "uint32", "repeated"},
		{"Username", 4, "string", ""},
	},
	"grpc.VersionCheckResponse": {
		{"grpc_version", 1, "string", ""},
		{"agent_version", 2, "string", ""},
	},
	"grpc.VolumeCondition": {
		{"abnormal", 1, "bool", ""},
		{"message", 2, "string", ""},
	},
	"grpc.VolumeStatsRequest": {
		{"volume_guest_path", 1, "string", ""},
	},
	"grpc.VolumeStatsResponse": {
		{"usage", 1, "message:grpc.VolumeUsage", "repeated"},
		{"volume_condition", 2, "message:grpc.VolumeCondition", ""},
	},
	"grpc.VolumeUsage": {
		{"available", 1, "uint64", ""},
		{"total", 2, "uint64", ""},
		{"used", 3, "uint64", ""},
		{"unit", 4, "enum:grpc.VolumeUsage.Unit", ""},
	},
	"grpc.WaitProcessRequest": {
		{"container_id", 1, "string", ""},
		{"exec_id", 2, "string", ""},
	},
	"grpc.WaitProcessResponse": {
		{"status", 1, "int32", ""},
	},
	"grpc.Windows": {
		{"dummy", 1, "string", ""},
	},
	"grpc.WriteStreamRequest": {
		{"container_id", 1, "string", ""},
		{"exec_id", 2, "string", ""},
		{"data", 3, "bytes", ""},
	},
	"grpc.WriteStreamResponse": {
		{"len", 1, "uint32", ""},
	},
	"types.ARPNeighbor": {
		{"toIPAddress", 1, "message:types.IPAddress", ""},
		{"device", 2, "string", ""},
		{"lladdr", 3, "string", ""},
		{"state", 4, "int32", ""},
		{"flags", 5, "int32", ""},
	},
	"types.IPAddress": {
		{"family", 1, "enum:types.IPFamily", ""},
		{"address", 2, "string", ""},
		{"mask", 3, "string", ""},
	},
	"types.Interface": {
		{"device", 1, "string", ""},
		{"name", 2, "string", ""},
		{"IPAddresses", 3, "message:types.IPAddress", "repeated"},
		{"mtu", 4, "uint64", ""},
		{"hwAddr", 5, "string", ""},
		{"devicePath", 6, "string", ""},
		{"type", 7, "string", ""},
		{"raw_flags", 8, "uint32", ""},
	},
	"types.Route": {
		{"dest", 1, "string", ""},
		{"gateway", 2, "string", ""},
		{"device", 3, "string", ""},
		{"source", 4, "string", ""},
		{"scope", 5, "uint32", ""},
		{"family", 6, "enum:types.IPFamily", ""},
		{"flags", 7, "uint32", ""},
		{"mtu", 8, "uint32", ""},
	},
}

var kataEnums = map[string]map[string]int32{
	"grpc.HealthCheckResponse.ServingStatus": {"UNKNOWN": 0, "SERVING": 1, "NOT_SERVING": 2},
	"grpc.VolumeUsage.Unit":                  {"UNKNOWN": 0, "BYTES": 1, "INODES": 2},
	"types.FSGroupChangePolicy":              {"Always": 0, "OnRootMismatch": 1},
	"types.IPFamily":                         {"v4": 0, "v6": 1},
}

var kataServices = map[string][]wantRPC{
	"grpc.AgentService": {
		{"CreateContainer", "grpc.CreateContainerRequest", "google.protobuf.Empty"},
		{"StartContainer", "grpc.StartContainerRequest", "google.protobuf.Empty"},
		{"RemoveContainer", "grpc.RemoveContainerRequest", "google.protobuf.Empty"},
		{"ExecProcess", "grpc.ExecProcessRequest", "google.protobuf.Empty"},
		{"SignalProcess", "grpc.SignalProcessRequest", "google.protobuf.Empty"},
		{"WaitProcess", "grpc.WaitProcessRequest", "grpc.WaitProcessResponse"},
		{"UpdateContainer", "grpc.UpdateContainerRequest", "google.protobuf.Empty"},
		{"UpdateEphemeralMounts", "grpc.UpdateEphemeralMountsRequest", "google.protobuf.Empty"},
		{"StatsContainer", "grpc.StatsContainerRequest", "grpc.StatsContainerResponse"},
		{"PauseContainer", "grpc.PauseContainerRequest", "google.protobuf.Empty"},
		{"ResumeContainer", "grpc.ResumeContainerRequest", "google.protobuf.Empty"},
		{"RemoveStaleVirtiofsShareMounts", "grpc.RemoveStaleVirtiofsShareMountsRequest", "google.protobuf.Empty"},
		{"GetDiagnosticData", "grpc.GetDiagnosticDataRequest", "grpc.GetDiagnosticDataResponse"},
		{"WriteStdin", "grpc.WriteStreamRequest", "grpc.WriteStreamResponse"},
		{"ReadStdout", "grpc.ReadStreamRequest", "grpc.ReadStreamResponse"},
		{"ReadStderr", "grpc.ReadStreamRequest", "grpc.ReadStreamResponse"},
		{"CloseStdin", "grpc.CloseStdinRequest", "google.protobuf.Empty"},
		{"TtyWinResize", "grpc.TtyWinResizeRequest", "google.protobuf.Empty"},
		{"UpdateInterface", "grpc.UpdateInterfaceRequest", "types.Interface"},
		{"UpdateRoutes", "grpc.UpdateRoutesRequest", "grpc.Routes"},
		{"ListInterfaces", "grpc.ListInterfacesRequest", "grpc.Interfaces"},
		{"ListRoutes", "grpc.ListRoutesRequest", "grpc.Routes"},
		{"AddARPNeighbors", "grpc.AddARPNeighborsRequest", "google.protobuf.Empty"},
		{"GetIPTables", "grpc.GetIPTablesRequest", "grpc.GetIPTablesResponse"},
		{"SetIPTables", "grpc.SetIPTablesRequest", "grpc.SetIPTablesResponse"},
		{"GetMetrics", "grpc.GetMetricsRequest", "grpc.Metrics"},
		{"MemAgentMemcgSet", "grpc.MemAgentMemcgConfig", "google.protobuf.Empty"},
		{"MemAgentCompactSet", "grpc.MemAgentCompactConfig", "google.protobuf.Empty"},
		{"CreateSandbox", "grpc.CreateSandboxRequest", "google.protobuf.Empty"},
		{"DestroySandbox", "grpc.DestroySandboxRequest", "google.protobuf.Empty"},
		{"OnlineCPUMem", "grpc.OnlineCPUMemRequest", "google.protobuf.Empty"},
		{"ReseedRandomDev", "grpc.ReseedRandomDevRequest", "google.protobuf.Empty"},
		{"GetGuestDetails", "grpc.GuestDetailsRequest", "grpc.GuestDetailsResponse"},
		{"MemHotplugByProbe", "grpc.MemHotplugByProbeRequest", "google.protobuf.Empty"},
		{"SetGuestDateTime", "grpc.SetGuestDateTimeRequest", "google.protobuf.Empty"},
		{"CopyFile", "grpc.CopyFileRequest", "google.protobuf.Empty"},
		{"GetOOMEvent", "grpc.GetOOMEventRequest", "grpc.OOMEvent"},
		{"AddSwap", "grpc.AddSwapRequest", "google.protobuf.Empty"},
		{"AddSwapPath", "grpc.AddSwapPathRequest", "google.protobuf.Empty"},
		{"GetVolumeStats", "grpc.VolumeStatsRequest", "grpc.VolumeStatsResponse"},
		{"ResizeVolume", "grpc.ResizeVolumeRequest", "google.protobuf.Empty"},
		{"SetPolicy", "grpc.SetPolicyRequest", "google.protobuf.Empty"},
	},
	"grpc.Health": {
		{"Check", "grpc.CheckRequest", "grpc.HealthCheckResponse"},
		{"Version", "grpc.CheckRequest", "grpc.VersionCheckResponse"},
	},
}

func fieldKind(fd protoreflect.FieldDescriptor) string {
	if fd.IsMap() {
		return fmt.Sprintf("map<%s,%s>", fieldKind(fd.MapKey()), fieldKind(fd.MapValue()))
	}
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return "message:" + string(fd.Message().FullName())
	case protoreflect.EnumKind:
		return "enum:" + string(fd.Enum().FullName())
	default:
		return fd.Kind().String()
	}
}

func fieldLabel(fd protoreflect.FieldDescriptor) string {
	if fd.IsMap() || fd.Cardinality() == protoreflect.Repeated {
		return "repeated"
	}
	if o := fd.ContainingOneof(); o != nil && !o.IsSynthetic() {
		return "oneof:" + string(o.Name())
	}
	if fd.HasOptionalKeyword() {
		return "optional"
	}
	return ""
}

type descriptors struct {
	messages map[string]protoreflect.MessageDescriptor
	enums    map[string]protoreflect.EnumDescriptor
	services map[string]protoreflect.ServiceDescriptor
}

func collect(t *testing.T) descriptors {
	t.Helper()
	d := descriptors{
		messages: map[string]protoreflect.MessageDescriptor{},
		enums:    map[string]protoreflect.EnumDescriptor{},
		services: map[string]protoreflect.ServiceDescriptor{},
	}
	addEnums := func(es protoreflect.EnumDescriptors) {
		for i := 0; i < es.Len(); i++ {
			d.enums[string(es.Get(i).FullName())] = es.Get(i)
		}
	}
	var addMessages func(ms protoreflect.MessageDescriptors)
	addMessages = func(ms protoreflect.MessageDescriptors) {
		for i := 0; i < ms.Len(); i++ {
			m := ms.Get(i)
			if m.IsMapEntry() {
				continue
			}
			d.messages[string(m.FullName())] = m
			addEnums(m.Enums())
			addMessages(m.Messages())
		}
	}
	for fd, pkg := range wantFiles() {
		if got := string(fd.Package()); got != pkg {
			t.Errorf("%s: package %q, want %q", fd.Path(), got, pkg)
		}
		if fd.Syntax() != protoreflect.Proto3 {
			t.Errorf("%s: syntax %v, want proto3", fd.Path(), fd.Syntax())
		}
		if reg, err := protoregistry.GlobalFiles.FindFileByPath(fd.Path()); err != nil || reg != fd {
			t.Errorf("%s: not registered in protoregistry.GlobalFiles (err=%v)", fd.Path(), err)
		}
		addMessages(fd.Messages())
		addEnums(fd.Enums())
		for i := 0; i < fd.Services().Len(); i++ {
			s := fd.Services().Get(i)
			d.services[string(s.FullName())] = s
		}
	}
	return d
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func TestMessagesMatchKata(t *testing.T) {
	d := collect(t)
	for _, name := range sortedKeys(kataMessages) {
		md, ok := d.messages[name]
		if !ok {
			t.Errorf("message %s: missing", name)
			continue
		}
		fields := md.Fields()
		seen := map[string]bool{}
		for _, w := range kataMessages[name] {
			seen[w.name] = true
			fd := fields.ByName(protoreflect.Name(w.name))
			if fd == nil {
				t.Errorf("%s.%s: missing field", name, w.name)
				continue
			}
			got := wantField{w.name, int32(fd.Number()), fieldKind(fd), fieldLabel(fd)}
			if got != w {
				t.Errorf("%s.%s: got %+v, want %+v", name, w.name, got, w)
			}
			// proto3 packs repeated scalars unless told otherwise; Kata
			// never overrides it.
			if fd.Cardinality() == protoreflect.Repeated && !fd.IsMap() {
				switch fd.Kind() {
				case protoreflect.StringKind, protoreflect.BytesKind, protoreflect.MessageKind, protoreflect.GroupKind:
				default:
					if !fd.IsPacked() {
						t.Errorf("%s.%s: repeated scalar is not packed", name, w.name)
					}
				}
			}
		}
		for i := 0; i < fields.Len(); i++ {
			if n := string(fields.Get(i).Name()); !seen[n] {
				t.Errorf("%s.%s: extra field", name, n)
			}
		}
	}
	for _, name := range sortedKeys(d.messages) {
		if _, ok := kataMessages[name]; !ok {
			t.Errorf("message %s: not in Kata's protocol", name)
		}
	}
}

func TestEnumsMatchKata(t *testing.T) {
	d := collect(t)
	for _, name := range sortedKeys(kataEnums) {
		ed, ok := d.enums[name]
		if !ok {
			t.Errorf("enum %s: missing", name)
			continue
		}
		want := kataEnums[name]
		got := map[string]int32{}
		for i := 0; i < ed.Values().Len(); i++ {
			v := ed.Values().Get(i)
			got[string(v.Name())] = int32(v.Number())
		}
		for _, v := range sortedKeys(want) {
			if n, ok := got[v]; !ok {
				t.Errorf("enum %s: missing value %s", name, v)
			} else if n != want[v] {
				t.Errorf("enum %s: value %s = %d, want %d", name, v, n, want[v])
			}
		}
		for _, v := range sortedKeys(got) {
			if _, ok := want[v]; !ok {
				t.Errorf("enum %s: extra value %s", name, v)
			}
		}
	}
	for _, name := range sortedKeys(d.enums) {
		if _, ok := kataEnums[name]; !ok {
			t.Errorf("enum %s: not in Kata's protocol", name)
		}
	}
}

func TestServicesMatchKata(t *testing.T) {
	d := collect(t)
	for _, name := range sortedKeys(kataServices) {
		sd, ok := d.services[name]
		if !ok {
			t.Errorf("service %s: missing", name)
			continue
		}
		methods := sd.Methods()
		seen := map[string]bool{}
		for _, w := range kataServices[name] {
			seen[w.name] = true
			m := methods.ByName(protoreflect.Name(w.name))
			if m == nil {
				t.Errorf("%s/%s: missing rpc", name, w.name)
				continue
			}
			got := wantRPC{w.name, string(m.Input().FullName()), string(m.Output().FullName())}
			if got != w {
				t.Errorf("%s/%s: got %+v, want %+v", name, w.name, got, w)
			}
			if m.IsStreamingClient() || m.IsStreamingServer() {
				t.Errorf("%s/%s: must be unary", name, w.name)
			}
		}
		for i := 0; i < methods.Len(); i++ {
			if n := string(methods.Get(i).Name()); !seen[n] {
				t.Errorf("%s/%s: extra rpc", name, n)
			}
		}
	}
	for _, name := range sortedKeys(d.services) {
		if _, ok := kataServices[name]; !ok {
			t.Errorf("service %s: not in Kata's protocol", name)
		}
	}
	if n := len(kataServices["grpc.AgentService"]); n != 42 {
		t.Errorf("table lists %d AgentService rpcs, want 42", n)
	}
}
