package sealedlog

import (
	"bytes"
	"crypto/ecdh"
)

// ReadAll opens every line of text (sealed output as the host relays it)
// and returns each stream's plaintext by stream name ("label#id") and the
// events other than Data, in order: what the owner's tool would mark.
func ReadAll(priv *ecdh.PrivateKey, text []byte) (map[string][]byte, []Event, error) {
	o, err := NewOpener(priv)
	if err != nil {
		return nil, nil, err
	}
	plain := map[string][]byte{}
	var marks []Event
	take := func(evs []Event) {
		for _, e := range evs {
			switch e.Kind {
			case Data, Late:
				plain[e.Stream] = append(plain[e.Stream], e.Data...)
			}
			if e.Kind != Data {
				marks = append(marks, e)
			}
		}
	}
	for len(text) > 0 {
		l := text
		if i := bytes.IndexByte(text, '\n'); i >= 0 {
			l, text = text[:i], text[i+1:]
		} else {
			text = nil
		}
		take(o.Line(l))
	}
	take(o.End())
	return plain, marks, nil
}

// Problem reports whether e is something the owner's tool marks as an
// error (exit status 1): records missing, reordered, replayed or
// rejected. Unsealed lines are reported but are not an error.
func (e Event) Problem() bool {
	switch e.Kind {
	case Missing, Late, Replayed, Rejected:
		return true
	}
	return false
}
