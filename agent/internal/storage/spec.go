package storage

import "slices"

// Storage is one volume to mount, as the runtime describes it: Driver picks
// the driver, Source and DriverOptions mean what that driver says, Fstype
// and Options are the mount's, MountPoint is where it goes.
type Storage struct {
	Driver        string
	DriverOptions []string
	Source        string
	Fstype        string
	Options       []string
	MountPoint    string
	// FSGroup, when set, gives the volume to the pod's fsGroup.
	FSGroup *FSGroup
	Shared  bool
	// Layers are the members of a host-shared EROFS layer group, which the
	// manager gathers from the request (erofs_group.go); never the host's.
	Layers []*Storage
}

// FSGroup is a pod's fsGroup for a volume. With OnRootMismatch a volume
// whose root already has the group and bits is not walked.
type FSGroup struct {
	GroupID        uint32
	OnRootMismatch bool
}

// GetSource returns s.Source; a nil s has none.
func (s *Storage) GetSource() string {
	if s == nil {
		return ""
	}
	return s.Source
}

// GetMountPoint returns s.MountPoint; a nil s has none.
func (s *Storage) GetMountPoint() string {
	if s == nil {
		return ""
	}
	return s.MountPoint
}

// GetDriverOptions returns s.DriverOptions; a nil s has none.
func (s *Storage) GetDriverOptions() []string {
	if s == nil {
		return nil
	}
	return s.DriverOptions
}

// clone is a deep copy, so that a driver can adjust a storage without
// changing its caller's.
func (s *Storage) clone() *Storage {
	c := *s
	c.DriverOptions = slices.Clone(s.DriverOptions)
	c.Options = slices.Clone(s.Options)
	if s.FSGroup != nil {
		g := *s.FSGroup
		c.FSGroup = &g
	}
	return &c
}
