package kbs

import (
	"net/url"
	"strings"

	"github.com/containerd/errdefs"

	"github.com/cocoon-tee/cocoon/internal/errs"
)

// Resource names one KBS resource: kbs:///<repository>/<type>/<tag>.
type Resource struct {
	Repository, Type, Tag string
	// Query is passed through to the KBS (resource plugins use it).
	Query string
}

// Path is the resource's path below /kbs/v0/resource/.
func (r Resource) Path() string {
	return r.Repository + "/" + r.Type + "/" + r.Tag
}

// String returns the canonical kbs:/// URI.
func (r Resource) String() string {
	s := "kbs:///" + r.Path()
	if r.Query != "" {
		s += "?" + r.Query
	}
	return s
}

// maxURILen bounds resource URIs taken from requests and annotations.
const maxURILen = 2048

// ParseResourceURI parses kbs:///repo/type/tag (a host part, as in
// kbs://example.org/repo/type/tag, is accepted and ignored: the client talks
// to its configured KBS only).
func ParseResourceURI(s string) (Resource, error) {
	bad := func(why string) (Resource, error) {
		return Resource{}, errs.Newf(errdefs.ErrInvalidArgument, "resource URI %.100q: %s", s, why)
	}
	if len(s) > maxURILen {
		return bad("too long")
	}
	u, err := url.Parse(s)
	if err != nil {
		return bad(err.Error())
	}
	if u.Scheme != "kbs" {
		return bad("scheme must be kbs")
	}
	if u.Opaque != "" || u.User != nil || u.Fragment != "" {
		return bad("want kbs:///<repository>/<type>/<tag>")
	}
	parts := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	if len(parts) != 3 {
		return bad("want exactly <repository>/<type>/<tag>")
	}
	return NewResource(parts[0], parts[1], parts[2], u.RawQuery)
}

// NewResource validates the three path segments.
func NewResource(repo, typ, tag, query string) (Resource, error) {
	for _, seg := range []string{repo, typ, tag} {
		if err := checkSegment(seg); err != nil {
			return Resource{}, err
		}
	}
	if strings.ContainsAny(query, "#\x00\r\n") {
		return Resource{}, errdefs.ErrInvalidArgument.WithMessage("resource query has invalid characters")
	}
	return Resource{Repository: repo, Type: typ, Tag: tag, Query: query}, nil
}

// checkSegment keeps segments to the characters KBS repositories use, so a
// segment can never become a path traversal or a second URL.
func checkSegment(seg string) error {
	if seg == "" || seg == "." || seg == ".." || len(seg) > 255 {
		return errs.Newf(errdefs.ErrInvalidArgument, "resource path segment %.60q is empty, a dot name or too long", seg)
	}
	for _, c := range seg {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_.+:=@", c)
		if !ok {
			return errs.Newf(errdefs.ErrInvalidArgument, "resource path segment %.60q has character %q", seg, c)
		}
	}
	return nil
}
