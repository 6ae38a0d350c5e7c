package server

import (
	"sync"
	"time"
)

// Event is one entry of the node's recent-events log, shown by the dashboard and
// GET /manager/api/events: joins, deaths, deploys, undeploys.
type Event struct {
	Time    time.Time `json:"time"`
	Type    string    `json:"type"` // e.g. "member.join", "member.dead", "app.deployed", "app.undeployed"
	Member  string    `json:"member,omitempty"`
	App     string    `json:"app,omitempty"`
	Message string    `json:"message,omitempty"`
}

// eventLog keeps the last few hundred events.
type eventLog struct {
	mu   sync.Mutex
	buf  []Event
	next int
	full bool
}

const eventLogSize = 256

func (l *eventLog) add(e Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf == nil {
		l.buf = make([]Event, eventLogSize)
	}
	l.buf[l.next] = e
	l.next = (l.next + 1) % eventLogSize
	if l.next == 0 {
		l.full = true
	}
}

// list returns the events, newest first.
func (l *eventLog) list() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.next
	if l.full {
		n = eventLogSize
	}
	out := make([]Event, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, l.buf[(l.next-i+eventLogSize)%eventLogSize])
	}
	return out
}

// RecordEvent adds an event to the node's recent-events log (the time is filled in when zero).
func (s *Server) RecordEvent(e Event) {
	if e.Time.IsZero() {
		e.Time = s.opts.Now()
	}
	s.events.add(e)
}

// Events returns the recent events, newest first.
func (s *Server) Events() []Event { return s.events.list() }
