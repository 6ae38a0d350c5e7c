package supervisor

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"unicode/utf8"
)

const (
	// tailLines is how many output lines a run keeps for error messages.
	tailLines = 20
	// lineQueue bounds the lines waiting for the logger; beyond it lines are dropped (and counted).
	lineQueue = 1024
	// truncMark ends a line that was cut at MaxLineBytes.
	truncMark = " [truncated]"
)

// ring keeps the last n strings added.
type ring struct {
	mu   sync.Mutex
	buf  []string
	next int
	full bool
}

func newRing(n int) *ring { return &ring{buf: make([]string, n)} }

func (r *ring) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf[r.next] = s
	r.next = (r.next + 1) % len(r.buf)
	if r.next == 0 {
		r.full = true
	}
}

// lines returns the kept strings, oldest first.
func (r *ring) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.full {
		return append([]string(nil), r.buf[:r.next]...)
	}
	out := make([]string, 0, len(r.buf))
	out = append(out, r.buf[r.next:]...)
	return append(out, r.buf[:r.next]...)
}

// scanLines reads rd until EOF or an error and calls emit for every non-empty line, without its "\n" or
// "\r\n". A line longer than max bytes is cut to at most max bytes (at a rune boundary) plus truncMark and the rest of it is skipped.
// Invalid UTF-8 is replaced by U+FFFD. It returns the read error that ended the scan (nil at EOF).
func scanLines(rd io.Reader, max int, emit func(string)) error {
	br := bufio.NewReaderSize(rd, max+1)
	skipping := false
	for {
		chunk, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if !skipping {
				if line := cleanLine(chunk[:runeCut(chunk, max)]); line != "" {
					emit(line + truncMark)
				}
				skipping = true
			}
			continue
		}
		if !skipping {
			if line := cleanLine(chunk); line != "" {
				emit(line)
			}
		}
		skipping = false
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// runeCut returns n, or less so that b[:n] does not end in the middle of a UTF-8 sequence.
func runeCut(b []byte, n int) int {
	if n >= len(b) {
		return len(b)
	}
	for i := n; i > 0 && i > n-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			return i
		}
	}
	return n
}

func cleanLine(b []byte) string {
	n := len(b)
	if n > 0 && b[n-1] == '\n' {
		n--
	}
	if n > 0 && b[n-1] == '\r' {
		n--
	}
	return strings.ToValidUTF8(string(b[:n]), "\uFFFD")
}

// outputLine is one line on its way to the logger.
type outputLine struct {
	stream string
	pid    int
	text   string
}

// readStream drains one of a run's pipes into the run's tail and the log queue; it never waits for the
// logger. It ends at EOF (every writer gone) or when the run's read deadline passes.
func (p *Process) readStream(r *run, f *os.File, stream string) {
	defer p.runs.Done()
	defer r.readers.Done()
	defer f.Close()
	err := scanLines(f, p.spec.MaxLineBytes, func(line string) {
		r.tail.add(stream + ": " + line)
		select {
		case p.lines <- outputLine{stream: stream, pid: r.pid, text: line}:
		default:
			p.dropped.Add(1)
		}
	})
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, os.ErrClosed) {
		p.log.Warn("app output read failed", "stream", stream, "pid", r.pid, "err", err)
	}
}

// sink logs queued output lines until p.lines is closed.
func (p *Process) sink() {
	defer close(p.sinkDone)
	for l := range p.lines {
		p.reportDropped()
		p.log.LogAttrs(context.Background(), slog.LevelInfo, "app output", slog.String("stream", l.stream),
			slog.Int("pid", l.pid), slog.String("line", l.text))
	}
	p.reportDropped()
}

func (p *Process) reportDropped() {
	if n := p.dropped.Swap(0); n > 0 {
		p.log.Warn("app output dropped", "lines", n)
	}
}
