package server

import (
	"context"
	"net"
	"sync"
)

// connSet counts the connections being served, so that a power-off can wait
// for the host to hang up instead of cutting replies still in flight.
type connSet struct {
	mu   sync.Mutex
	open int
	idle chan struct{} // closed while open == 0
}

func newConnSet() *connSet {
	idle := make(chan struct{})
	close(idle)
	return &connSet{idle: idle}
}

func (s *connSet) add() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open == 0 {
		s.idle = make(chan struct{})
	}
	s.open++
}

func (s *connSet) remove() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open--; s.open == 0 {
		close(s.idle)
	}
}

// wait returns once no connection is open, or with ctx's error.
func (s *connSet) wait(ctx context.Context) error {
	s.mu.Lock()
	idle := s.idle
	s.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// trackingListener registers every accepted connection in a connSet until
// the server closes it, which ttrpc does when the peer hangs up.
type trackingListener struct {
	net.Listener
	conns *connSet
}

func (l trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.conns.add()
	return &trackedConn{Conn: c, conns: l.conns}, nil
}

type trackedConn struct {
	net.Conn
	conns *connSet
	once  sync.Once
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.conns.remove)
	return err
}
