package network

import "strconv"

// Family is an address family as the runtime names it.
type Family int32

// The two families; the zero value is IPv4, as on the wire.
const (
	FamilyV4 Family = 0
	FamilyV6 Family = 1
)

// String names the family as Kata does ("v4", "v6").
func (f Family) String() string {
	switch f {
	case FamilyV4:
		return "v4"
	case FamilyV6:
		return "v6"
	}
	return strconv.Itoa(int(f))
}

// IPAddress is an address with its mask: a prefix length ("24") or a dotted
// IPv4 netmask.
type IPAddress struct {
	Family  Family
	Address string
	Mask    string
}

// Interface is a NIC: what UpdateInterface asks for, and what the agent
// reports. DevicePath (a PCI path) says where a hot-plugged NIC is.
type Interface struct {
	Device      string
	Name        string
	IPAddresses []*IPAddress
	MTU         uint64
	HwAddr      string
	DevicePath  string
	Type        string
	RawFlags    uint32
}

// Route is one route of the main table. An empty Dest is the default route.
type Route struct {
	Dest    string
	Gateway string
	Device  string
	Source  string
	Scope   uint32
	Family  Family
	Flags   uint32
	MTU     uint32
}

// ARPNeighbor is a neighbour entry; State 0 means permanent.
type ARPNeighbor struct {
	ToIPAddress *IPAddress
	Device      string
	Lladdr      string
	State       int32
	Flags       int32
}
