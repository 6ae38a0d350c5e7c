package replication

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/herdproject/herd/channel"
	"github.com/herdproject/herd/placement"
	"github.com/herdproject/herd/session"
)

// TransferStats describes the start-up state transfer.
type TransferStats struct {
	// Done is set once the transfer is over (whatever its outcome).
	Done bool `json:"done"`
	// Sessions is the number of sessions received and applied.
	Sessions int `json:"sessions"`
	// Bytes is the size of the streams received.
	Bytes int64 `json:"bytes"`
	// From names the peers the sessions came from.
	From []string `json:"from"`
	// DurationMs is the time from the first request to the end.
	DurationMs int64 `json:"durationMs"`
	// Error is the last failure, if any peer could not deliver.
	Error string `json:"error,omitempty"`
}

// pendingTransfer is a state transfer this node asked a peer for.
type pendingTransfer struct {
	peer   string
	result chan transferResult
}

type transferResult struct {
	sessions int
	bytes    int64
	err      error
}

// initialTransfer pulls what this node must hold from its peers, then marks it ready. With the delta
// manager one peer is enough (every peer holds every session; the next is tried if one fails); with
// the backup manager each peer sends the sessions whose copies placement gives to this node.
func (r *Replicator) initialTransfer() {
	defer r.ready.Store(true)
	start := time.Now()
	deadline := start.Add(r.cfg.DiscoveryWait)
	for len(r.view.Load().peers) == 0 && time.Now().Before(deadline) {
		select {
		case <-r.ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
	v := r.view.Load()
	st := &TransferStats{From: []string{}}
	if len(v.peers) == 0 {
		st.Done = true
		r.transfer.Store(st)
		r.log.Info("no peers: nothing to pull", "event", "replication.transfer_done", "sessions", 0)
		return
	}
	var mu sync.Mutex
	pull := func(p *peer) error {
		res := r.pull(p, v.live)
		mu.Lock()
		defer mu.Unlock()
		if res.err != nil {
			st.Error = fmt.Sprintf("%s: %v", p.name, res.err)
			r.log.Warn("state transfer from peer failed", "event", "replication.transfer_error", "peer", p.name, "err", res.err)
			return res.err
		}
		st.Sessions += res.sessions
		st.Bytes += res.bytes
		st.From = append(st.From, p.name)
		return nil
	}
	if r.cfg.Manager == ManagerDelta {
		for _, p := range v.peers {
			if pull(p) == nil {
				st.Error = ""
				break
			}
		}
	} else {
		var wg sync.WaitGroup
		for _, p := range v.peers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = pull(p)
			}()
		}
		wg.Wait()
	}
	st.Done = true
	st.DurationMs = time.Since(start).Milliseconds()
	slices.Sort(st.From)
	r.transfer.Store(st)
	r.log.Info("state transfer done", "event", "replication.transfer_done", "sessions", st.Sessions,
		"bytes", st.Bytes, "from", st.From, "took", time.Since(start).Round(time.Millisecond))
}

// pull asks p to stream the sessions this node must hold and waits for the stream to end.
func (r *Replicator) pull(p *peer, live []string) transferResult {
	token := newToken()
	pt := &pendingTransfer{peer: p.name, result: make(chan transferResult, 1)}
	r.pendingMu.Lock()
	r.pending[token] = pt
	r.pendingMu.Unlock()
	defer func() {
		r.pendingMu.Lock()
		delete(r.pending, token)
		r.pendingMu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(r.ctx, r.cfg.TransferTimeout)
	defer cancel()
	body, err := channel.Encode(&transferRequest{Token: token, Addr: r.cfg.Addr, Members: live})
	if err != nil {
		return transferResult{err: err}
	}
	if _, err := r.cfg.Channel.Request(ctx, p.addr, channel.Message{Type: TypeTransfer, Body: body}); err != nil {
		return transferResult{err: err}
	}
	select {
	case res := <-pt.result:
		return res
	case <-ctx.Done():
		return transferResult{err: fmt.Errorf("state transfer: %w", context.Cause(ctx))}
	}
}

// handleTransfer accepts a peer's request for state and streams it back in the background.
func (r *Replicator) handleTransfer(_ context.Context, from string, msg channel.Message) ([]byte, error) {
	var req transferRequest
	if err := decode(msg.Body, &req); err != nil {
		r.c.badMessages.Add(1)
		return nil, err
	}
	if err := req.validate(); err != nil {
		r.c.badMessages.Add(1)
		return nil, err
	}
	started := r.goFunc(func() {
		if err := r.streamTo(from, req); err != nil {
			r.log.Warn("state transfer to peer failed", "event", "replication.transfer_send_error", "peer", from, "err", err)
		}
	})
	if !started {
		return nil, errors.New("replication: shutting down")
	}
	return nil, nil
}

// streamTo sends the requester the sessions it must hold, one msgpack delta after another.
func (r *Replicator) streamTo(to string, req transferRequest) error {
	ctx, cancel := context.WithTimeout(r.ctx, r.cfg.TransferTimeout)
	defer cancel()
	hdr, err := channel.Encode(&transferHeader{Token: req.Token})
	if err != nil {
		return err
	}
	s, err := r.cfg.Channel.OpenStream(ctx, req.Addr, channel.Message{Type: TypeTransferData, Body: hdr})
	if err != nil {
		return err
	}
	start := time.Now()
	w := bufio.NewWriterSize(s, 256<<10)
	others := slices.DeleteFunc(slices.Clone(req.Members), func(n string) bool { return n == r.cfg.Name })
	memberSet := make(map[string]bool, len(req.Members))
	for _, n := range req.Members {
		memberSet[n] = true
	}
	n := 0
	var werr error
	r.cfg.Sessions.EachSnapshot(func(d session.Delta) bool {
		if !r.wants(to, d.ID, others, req.Members, memberSet) {
			return true
		}
		enc, err := session.MarshalDelta(d)
		if err != nil {
			return true
		}
		if _, werr = w.Write(enc); werr != nil {
			return false
		}
		n++
		return true
	})
	if werr == nil {
		werr = w.Flush()
	}
	if werr != nil {
		_ = s.Abort()
		return werr
	}
	if err := s.Close(); err != nil {
		return err
	}
	r.c.transfersServed.Add(1)
	r.log.Info("state transfer sent", "event", "replication.transfer_sent", "peer", to, "sessions", n,
		"took", time.Since(start).Round(time.Millisecond))
	return nil
}

// wants reports whether the requester to must hold session id: always with the delta manager; with
// the backup manager, when it is one of the backups of a session this node is primary of, when it is
// the session's primary itself (a node restarted faster than failure detection), or when the
// session's primary is gone and it is among the session's next holders.
func (r *Replicator) wants(to, id string, others, members []string, memberSet map[string]bool) bool {
	if r.cfg.Manager == ManagerDelta {
		return true
	}
	r.ownersMu.Lock()
	owner, replica := r.owners[id]
	r.ownersMu.Unlock()
	switch {
	case !replica:
		return slices.Contains(placement.Owners(id, others, r.cfg.Backups), to)
	case owner == to:
		return true
	case !memberSet[owner]:
		return slices.Contains(placement.Owners(id, members, r.cfg.Backups+1), to)
	}
	return false
}

// handleTransferData receives a state-transfer stream this node asked for and applies it.
func (r *Replicator) handleTransferData(_ context.Context, from string, msg channel.Message, rd io.Reader) error {
	var hdr transferHeader
	if err := decode(msg.Body, &hdr); err != nil {
		r.c.badMessages.Add(1)
		return err
	}
	r.pendingMu.Lock()
	pt := r.pending[hdr.Token]
	r.pendingMu.Unlock()
	if pt == nil || pt.peer != from {
		r.c.badMessages.Add(1)
		return fmt.Errorf("%w: unexpected state transfer from %s", ErrFrame, from)
	}
	cr := &countingReader{r: rd}
	n, err := decodeStream(cr, func(d session.Delta) {
		r.noteRemote(from, d)
		if aerr := r.cfg.Sessions.ApplyRemote(d); aerr != nil && !errors.Is(aerr, session.ErrGap) {
			r.c.applyErrors.Add(1)
		}
	})
	if err != nil {
		err = fmt.Errorf("%w: state transfer from %s after %d sessions: %w", ErrFrame, from, n, err)
	}
	select {
	case pt.result <- transferResult{sessions: n, bytes: cr.n, err: err}:
	default:
	}
	return err
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// decodeStream reads msgpack deltas from rd until EOF, validating each before fn sees it. It returns
// how many it passed on and the first error (a bad delta ends the stream).
func decodeStream(rd io.Reader, fn func(session.Delta)) (int, error) {
	br := bufio.NewReaderSize(rd, 256<<10)
	dec := msgpack.NewDecoder(br)
	n := 0
	for {
		if _, err := br.Peek(1); errors.Is(err, io.EOF) {
			return n, nil // a clean end between deltas
		}
		var d session.Delta
		if err := d.DecodeMsgpack(dec); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF // the stream ended inside a delta
			}
			return n, fmt.Errorf("delta %d: %w", n, err)
		}
		if err := d.Validate(); err != nil {
			return n, fmt.Errorf("delta %d: %w", n, err)
		}
		fn(d)
		n++
	}
}
