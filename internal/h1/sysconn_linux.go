package h1

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// sysConn reads and writes a non-blocking socket with raw system calls. A socket that is not ready
// answers EAGAIN at once, so the calls cannot block, and the runtime's bookkeeping for calls that
// may (entering and leaving the system call, and the monitor thread handing the processor to another
// thread when a call seems long) is work without use: on a loopback proxy hop a write runs the
// receiver's TCP input too and can take long enough to look blocked. Waiting for readiness, deadlines
// and closing stay the poller's (syscall.RawConn).
//
// Reads are made by one goroutine at a time and so are writes (the connection's bufio.Reader and
// bufio.Writer already require it); a read and a write may run at once.
type sysConn struct {
	net.Conn
	rc      syscall.RawConn
	rp      []byte
	rn      int
	rerr    error
	wp      []byte
	wn      int
	werr    error
	readFn  func(uintptr) bool
	writeFn func(uintptr) bool

	vec      [][]byte // what WriteBuffers has left to write
	vn       int64
	iov      [maxVec]syscall.Iovec
	writevFn func(uintptr) bool

	// Direct mode (see enter): the goroutine is inside a raw read of the connection, which holds
	// the descriptor open and owns the poller's read readiness.
	direct  bool
	fd      uintptr // the descriptor, while direct
	drained bool    // the last direct read left no bytes behind: it was short, or found nothing
	pending error   // a read error found by a direct read that had to report something else first
}

// enter puts s in direct mode: from inside a raw read of the connection (syscall.RawConn.Read,
// whose callback got fd), reads and writes make their system calls at once instead of taking the
// poller's locks again (which, for reads, the raw read holds: a read through the poller would wait
// for itself). A direct read that finds nothing answers errAgain instead of waiting: the caller
// returns false from the callback to wait, which is safe once drained is set (an edge-triggered
// poller wakes the wait for whatever arrives after a read that took every byte; a close queued
// behind those bytes is not shown, see session.go). A direct write that finds the socket full
// finishes through the poller. leave ends it; both are for the goroutine that reads and writes
// the connection.
func (s *sysConn) enter(fd uintptr) { s.direct, s.fd = true, fd }

// leave ends direct mode.
func (s *sysConn) leave() { s.direct = false }

// errAgain is a direct read that found nothing to read (EAGAIN).
var errAgain = errors.New("h1: nothing to read yet")

// maxVec bounds the buffers of one WriteBuffers call.
const maxVec = 8

// rawIO returns c with raw system calls for Read and Write when it is a *net.TCPConn (non-blocking
// by construction), or c itself: TLS, pipes, and wrappers that may do their own reading and writing
// (a listener's PROXY protocol, byte counting) keep theirs.
func rawIO(c net.Conn) net.Conn {
	sc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	s := &sysConn{Conn: c, rc: rc}
	s.readFn, s.writeFn, s.writevFn = s.read, s.write, s.writev
	return s
}

// opError is a failed system call as the net package reports it.
func (s *sysConn) opError(op, call string, e syscall.Errno) error {
	return &net.OpError{Op: op, Net: "tcp", Source: s.LocalAddr(), Addr: s.RemoteAddr(), Err: os.NewSyscallError(call, e)}
}

func (s *sysConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if err := s.pending; err != nil {
		s.pending = nil
		return 0, err
	}
	s.rp, s.rn, s.rerr = p, 0, nil
	if s.direct {
		ok := s.read(s.fd)
		s.rp = nil
		if !ok {
			s.drained = true
			return 0, errAgain
		}
		s.drained = s.rn < len(p) // a short read took all the socket held
		return s.rn, s.rerr
	}
	err := s.rc.Read(s.readFn)
	s.rp = nil
	if err != nil {
		return 0, err
	}
	return s.rn, s.rerr
}

func (s *sysConn) read(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall6(sysRecv, fd, uintptr(unsafe.Pointer(&s.rp[0])), uintptr(len(s.rp)), 0, 0, 0)
		switch e {
		case 0:
			if n == 0 {
				s.rerr = io.EOF
			}
			s.rn = int(n)
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		s.rerr = s.opError("read", "read", e)
		return true
	}
}

func (s *sysConn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.wp, s.wn, s.werr = p, 0, nil
	var err error
	if !s.direct || !s.write(s.fd) { // the poller waits for room and writes the rest
		err = s.rc.Write(s.writeFn)
	}
	n := s.wn
	s.wp = nil
	if err == nil {
		err = s.werr
	}
	return n, err
}

func (s *sysConn) write(fd uintptr) bool {
	for s.wn < len(s.wp) {
		rest := s.wp[s.wn:]
		n, _, e := syscall.RawSyscall6(sysSend, fd, uintptr(unsafe.Pointer(&rest[0])), uintptr(len(rest)), sendFlags, 0, 0)
		switch e {
		case 0:
			s.wn += int(n)
			continue
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		s.werr = s.opError("write", "write", e)
		return true
	}
	return true
}

// WriteBuffers writes bufs (at most maxVec of them) with as few system calls as the socket allows:
// one, when it takes them all.
func (s *sysConn) WriteBuffers(bufs [][]byte) (int64, error) {
	if len(bufs) > maxVec {
		panic("h1: too many buffers for one write")
	}
	s.vec, s.vn, s.werr = bufs, 0, nil
	var err error
	if !s.direct || !s.writev(s.fd) {
		err = s.rc.Write(s.writevFn)
	}
	n := s.vn
	s.vec = nil
	if err == nil {
		err = s.werr
	}
	return n, err
}

func (s *sysConn) writev(fd uintptr) bool {
	for {
		k := 0
		for _, b := range s.vec {
			if len(b) > 0 {
				s.iov[k] = syscall.Iovec{Base: &b[0]}
				s.iov[k].SetLen(len(b))
				k++
			}
		}
		if k == 0 {
			return true
		}
		// writev has no flags: a peer's reset raises SIGPIPE, which the runtime ignores for every
		// descriptor but standard output and error, and the call fails with EPIPE.
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&s.iov[0])), uintptr(k))
		switch e {
		case 0:
			s.vn += int64(n)
			consume(&s.vec, int(n))
			continue
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		s.werr = s.opError("write", "writev", e)
		return true
	}
}

// consume drops the first n bytes of the buffers *v.
func consume(v *[][]byte, n int) {
	for len(*v) > 0 && n > 0 {
		b := (*v)[0]
		if n < len(b) {
			(*v)[0] = b[n:]
			return
		}
		n -= len(b)
		*v = (*v)[1:]
	}
	for len(*v) > 0 && len((*v)[0]) == 0 {
		*v = (*v)[1:]
	}
}
