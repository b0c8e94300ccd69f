package sandbox

// SetHooks installs the test seams (hooks in sandbox.go): checked runs once
// CreateContainer has checked every path, beforeCreate just before
// libcontainer creates the container.
func SetHooks(s *Sandbox, checked, beforeCreate func()) {
	s.hooks = hooks{checked: checked, beforeCreate: beforeCreate}
}
