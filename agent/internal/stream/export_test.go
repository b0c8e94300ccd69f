package stream

// OnParking makes every later read of s call fn just before it may block on
// its descriptor. A deadline set after fn runs still ends that read (it is
// kept by the descriptor, not by the read), so a test may call Exited from
// fn's signal and know the read it acts on is the blocked one. Call it
// while no read is running.
func (s *IO) OnParking(fn func()) {
	for _, r := range s.out {
		r.parking = fn
	}
}
