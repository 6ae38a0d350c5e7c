package channel

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Message is what the channel moves: a caller-defined type and opaque bytes.
type Message struct {
	Type uint16 // caller-defined message type; selects the peer's handler
	Body []byte // at most Config.MaxFrame bytes; a handler may keep it
}

// Handler serves one message type. from is the sender's authenticated
// member name. For a Request the reply (nil is an empty ack) or the error
// text goes back to the sender; for a Send both are dropped. Handlers run on
// their connection's reader, one at a time per connection, so they should
// return promptly (the sender gives up on a connection that stays silent
// for IdleTimeout); ctx is cancelled when the connection or Channel closes.
// A panic is recovered and returned to the sender as an error.
type Handler func(ctx context.Context, from string, msg Message) (reply []byte, err error)

// maxPendingHandshakes bounds accepted connections still in their
// handshake; further ones are closed at once.
const maxPendingHandshakes = 128

const (
	stateNew = iota
	stateStarted
	stateClosed
)

// Channel is a member's end of the cluster channel. Create it with New,
// register handlers, Start it, and Shutdown when done. All methods are safe
// for concurrent use.
type Channel struct {
	cfg  Config
	keys clusterKeys
	log  *slog.Logger

	ctx    context.Context // cancelled by Shutdown; parent of every goroutine's context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	hsSem  chan struct{}

	hmu      sync.RWMutex
	handlers map[uint16]Handler
	lent     map[uint16]bool // types registered with HandleTransient
	streams  map[uint16]StreamHandler

	mu    sync.Mutex
	state int
	ln    net.Listener
	live  map[io.Closer]struct{} // every open net.Conn, handshaking ones too
	pools map[string]*pool

	stats channelCounters
}

// New validates cfg and derives the cluster keys. Nothing is opened until
// Start.
func New(cfg Config) (*Channel, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	keys, err := deriveClusterKeys(cfg.Secret, cfg.Cluster, cfg.kdfIter)
	if err != nil {
		return nil, err
	}
	cfg.Secret = nil // only the derived keys are kept
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Channel{
		cfg: cfg, keys: keys, log: log.With("member", cfg.Name),
		ctx: ctx, cancel: cancel, hsSem: make(chan struct{}, maxPendingHandshakes),
		handlers: make(map[uint16]Handler), lent: make(map[uint16]bool), streams: make(map[uint16]StreamHandler),
		live: make(map[io.Closer]struct{}), pools: make(map[string]*pool),
		stats: channelCounters{peers: make(map[string]*peerCounters)},
	}, nil
}

// Handle registers h for messages of type typ, replacing any earlier one.
// Register before Start so that no early message finds the type unknown.
func (ch *Channel) Handle(typ uint16, h Handler) {
	ch.hmu.Lock()
	defer ch.hmu.Unlock()
	ch.handlers[typ] = h
	delete(ch.lent, typ)
}

// HandleTransient is Handle for a handler that is done with msg.Body when it returns (it copies
// whatever it keeps): such messages are read into a buffer the connection reuses instead of one
// allocated per message.
func (ch *Channel) HandleTransient(typ uint16, h Handler) {
	ch.hmu.Lock()
	defer ch.hmu.Unlock()
	ch.handlers[typ] = h
	ch.lent[typ] = true
}

// handlerOf returns typ's handler and whether it was registered with HandleTransient, read together
// so that a handler replaced meanwhile never gets a body lent to the one before.
func (ch *Channel) handlerOf(typ uint16) (h Handler, transient bool) {
	ch.hmu.RLock()
	defer ch.hmu.RUnlock()
	return ch.handlers[typ], ch.lent[typ]
}

// Start binds Config.Bind (unless empty) and starts accepting peers. ctx
// bounds only the bind; the Channel runs until Shutdown.
func (ch *Channel) Start(ctx context.Context) error {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	switch ch.state {
	case stateStarted:
		return errors.New("channel: already started")
	case stateClosed:
		return ErrClosed
	}
	if ch.cfg.Bind != "" {
		var lc net.ListenConfig
		ln, err := lc.Listen(ctx, "tcp", ch.cfg.Bind)
		if err != nil {
			return fmt.Errorf("channel: listen on %s: %w", ch.cfg.Bind, err)
		}
		ch.ln = ln
		ch.wg.Add(1)
		go func() {
			defer ch.wg.Done()
			ch.acceptLoop(ln)
		}()
		ch.log.Info("channel.listening", "addr", ln.Addr().String(), "tls", ch.cfg.TLS != nil)
	}
	ch.state = stateStarted
	return nil
}

// Addr returns the bound listen address ("" before Start or when dial-only).
func (ch *Channel) Addr() string {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.ln == nil {
		return ""
	}
	return ch.ln.Addr().String()
}

// Shutdown closes the listener and every connection, fails waiting calls
// with ErrClosed or ErrConnClosed, and waits for the Channel's goroutines,
// stream handlers included (they must honour their context). It is
// idempotent.
func (ch *Channel) Shutdown() error {
	ch.mu.Lock()
	if ch.state == stateClosed {
		ch.mu.Unlock()
		ch.wg.Wait()
		return nil
	}
	ch.state = stateClosed
	ch.cancel()
	var err error
	if ch.ln != nil {
		err = ch.ln.Close()
	}
	for c := range ch.live {
		_ = c.Close()
	}
	ch.pools = make(map[string]*pool)
	ch.mu.Unlock()
	ch.wg.Wait()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("channel: close listener: %w", err)
	}
	return nil
}

// goFunc runs f on a goroutine the Channel waits for, unless it is closed.
func (ch *Channel) goFunc(f func()) bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.state == stateClosed {
		return false
	}
	ch.wg.Add(1)
	go func() {
		defer ch.wg.Done()
		f()
	}()
	return true
}

// track records an open connection so Shutdown can close it; it refuses
// (false) once the Channel is closed.
func (ch *Channel) track(c io.Closer) bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.state == stateClosed {
		return false
	}
	ch.live[c] = struct{}{}
	return true
}

func (ch *Channel) untrack(c io.Closer) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	delete(ch.live, c)
}

func (ch *Channel) acceptLoop(ln net.Listener) {
	delay := 5 * time.Millisecond
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ch.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			ch.log.Warn("channel.accept_failed", "err", err, "retry_in", delay)
			t := time.NewTimer(delay)
			select {
			case <-ch.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			delay = min(2*delay, time.Second)
			continue
		}
		delay = 5 * time.Millisecond
		ch.stats.accepted.Add(1)
		select {
		case ch.hsSem <- struct{}{}:
		default:
			ch.stats.handshakeFailures.Add(1)
			ch.log.Warn("channel.handshake_refused", "remote", nc.RemoteAddr().String(), "reason", "too many pending handshakes")
			_ = nc.Close()
			continue
		}
		if !ch.goFunc(func() { ch.serveConn(nc) }) {
			<-ch.hsSem
			_ = nc.Close()
			return
		}
	}
}

// serveConn authenticates an accepted connection and then reads it.
func (ch *Channel) serveConn(nc net.Conn) {
	remote := nc.RemoteAddr().String()
	c, err := ch.handshake(ch.ctx, nc, false, 0, "")
	<-ch.hsSem
	if err != nil {
		ch.stats.handshakeFailures.Add(1)
		ch.log.Warn("channel.handshake_failed", "remote", remote, "err", err)
		return
	}
	ch.log.Debug("channel.accepted", "peer", c.peer, "remote", remote, "kind", c.kind)
	c.readLoop()
}

// dial connects to addr and authenticates a connection of the given kind.
// The connection is not yet started.
func (ch *Channel) dial(ctx context.Context, addr string, kind byte) (*conn, error) {
	d := net.Dialer{Timeout: ch.cfg.DialTimeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c, err := ch.handshake(ctx, nc, true, kind, addr)
	if err != nil {
		ch.stats.handshakeFailures.Add(1)
		ch.log.Warn("channel.handshake_failed", "remote", addr, "outbound", true, "err", err)
		return nil, err
	}
	return c, nil
}

// handshake runs TLS (when configured) and the secret handshake on nc
// under HandshakeTimeout and ctx. On failure nc is closed.
func (ch *Channel) handshake(ctx context.Context, nc net.Conn, outbound bool, kind byte, addr string) (*conn, error) {
	raw := nc
	if !ch.track(raw) {
		_ = raw.Close()
		return nil, ErrClosed
	}
	fail := func(err error) (*conn, error) {
		_ = raw.Close()
		ch.untrack(raw)
		return nil, err
	}
	_ = nc.SetDeadline(time.Now().Add(ch.cfg.HandshakeTimeout))
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if ch.cfg.TLS != nil {
		tc, err := ch.wrapTLS(ctx, nc, outbound, addr)
		if err != nil {
			return fail(fmt.Errorf("%w: tls: %w", ErrHandshake, err))
		}
		nc = tc
	}
	br := bufio.NewReaderSize(nc, 64<<10)
	var s *session
	var err error
	if outbound {
		s, err = ch.keys.clientHandshake(br, nc, ch.cfg.Name, kind)
	} else {
		s, err = ch.keys.serverHandshake(br, nc, ch.cfg.Name)
	}
	if err != nil {
		return fail(err)
	}
	if !stop() && ctx.Err() != nil {
		return fail(context.Cause(ctx))
	}
	_ = nc.SetDeadline(time.Time{})
	c := ch.newConn(nc, br, s, outbound)
	c.stats = ch.stats.peer(s.peer)
	c.stats.conns.Add(1)
	// Shutdown closes raw; TLS state needs no separate close.
	c.nc = nc
	ch.retrack(raw, c)
	return c, nil
}

// retrack keys a handshaken connection by its conn so close untracks it.
func (ch *Channel) retrack(raw net.Conn, c *conn) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	delete(ch.live, raw)
	if ch.state == stateClosed {
		_ = raw.Close()
		return
	}
	ch.live[c.nc] = struct{}{}
}

func (ch *Channel) wrapTLS(ctx context.Context, nc net.Conn, outbound bool, addr string) (net.Conn, error) {
	if !outbound {
		tc := tls.Server(nc, ch.cfg.TLS)
		return tc, tc.HandshakeContext(ctx)
	}
	cfg := ch.cfg.TLS
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		cfg = cfg.Clone()
		cfg.ServerName = host
	}
	tc := tls.Client(nc, cfg)
	return tc, tc.HandshakeContext(ctx)
}

// startConn runs a handshaken outbound connection's reader (and pinger).
func (ch *Channel) startConn(c *conn) error {
	if !ch.goFunc(c.readLoop) {
		c.close(ErrClosed)
		return ErrClosed
	}
	if ch.cfg.KeepAlive > 0 {
		ch.goFunc(c.keepAlive)
	}
	return nil
}
