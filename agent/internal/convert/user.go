package convert

import (
	"github.com/cocoon-tee/cocoon/agent/container"
	"github.com/cocoon-tee/cocoon/protocols/agentpb"
)

// StringUserFromProto is the request's string user; nil stays nil.
func StringUserFromProto(su *agentpb.StringUser) *container.StringUser {
	if su == nil {
		return nil
	}
	return &container.StringUser{UID: su.Uid, GID: su.Gid, AdditionalGids: append([]string(nil), su.AdditionalGids...)}
}
