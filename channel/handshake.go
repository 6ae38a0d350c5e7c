package channel

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
)

// Connection kinds, chosen by the dialler in its auth record.
const (
	connMessages byte = 1 // pooled messages and requests
	connStream   byte = 2 // one stream
)

const (
	helloLen    = 4 + 1 + 8 + 32
	macLen      = sha256.Size
	maxAuthBody = 3 + MaxNameLen + macLen
)

var helloMagic = []byte("HERD")

// session is the outcome of a handshake: the record ciphers of both
// directions and the authenticated peer.
type session struct {
	send, recv *recordCipher
	peer       string // the peer's member name
	kind       byte   // connMessages or connStream
}

func encodeHello(tag [8]byte, pub []byte) []byte {
	b := make([]byte, 0, helloLen)
	b = append(b, helloMagic...)
	b = append(b, protoVersion)
	b = append(b, tag[:]...)
	return append(b, pub...)
}

func parseHello(b []byte, tag [8]byte) (*ecdh.PublicKey, error) {
	switch {
	case !bytes.Equal(b[:4], helloMagic):
		return nil, fmt.Errorf("hello magic %q is not %q", b[:4], helloMagic)
	case b[4] != protoVersion:
		return nil, fmt.Errorf("protocol version %d, want %d", b[4], protoVersion)
	case !bytes.Equal(b[5:13], tag[:]):
		return nil, ErrWrongCluster
	}
	return ecdh.X25519().NewPublicKey(b[13:])
}

func encodeAuth(kind byte, name string, mac []byte) []byte {
	b := make([]byte, 0, 3+len(name)+len(mac))
	b = append(b, protoVersion, kind, byte(len(name)))
	b = append(b, name...)
	return append(b, mac...)
}

func parseAuth(f frame) (kind byte, name string, mac []byte, err error) {
	b := f.body
	if f.kind != kindAuth {
		return 0, "", nil, fmt.Errorf("frame kind %d, want auth", f.kind)
	}
	if len(b) < 3 || len(b) != 3+int(b[2])+macLen {
		return 0, "", nil, fmt.Errorf("auth record of %d bytes is malformed", len(b))
	}
	if b[0] != protoVersion {
		return 0, "", nil, fmt.Errorf("auth version %d, want %d", b[0], protoVersion)
	}
	kind, name, mac = b[1], string(b[3:3+int(b[2])]), b[3+int(b[2]):]
	if kind != connMessages && kind != connStream {
		return 0, "", nil, fmt.Errorf("unknown connection kind %d", kind)
	}
	if err := validName(name); err != nil {
		return 0, "", nil, fmt.Errorf("peer name %w", err)
	}
	return kind, name, mac, nil
}

// exchange sends our hello, reads the peer's and derives the transcript hash
// and both record ciphers. The client speaks first.
func (k clusterKeys) exchange(r io.Reader, w io.Writer, client bool) (th []byte, send, recv *recordCipher, err error) {
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	mine := encodeHello(k.tag, priv.PublicKey().Bytes())
	theirs := make([]byte, helloLen)
	if client {
		if _, err := w.Write(mine); err != nil {
			return nil, nil, nil, fmt.Errorf("write hello: %w", err)
		}
	}
	if _, err := io.ReadFull(r, theirs); err != nil {
		return nil, nil, nil, fmt.Errorf("read hello: %w", err)
	}
	pub, err := parseHello(theirs, k.tag)
	if err != nil {
		if !client && errors.Is(err, ErrWrongCluster) {
			_, _ = w.Write(mine) // lets the dialler report the mismatch too
		}
		return nil, nil, nil, fmt.Errorf("peer hello: %w", err)
	}
	if !client {
		if _, err := w.Write(mine); err != nil {
			return nil, nil, nil, fmt.Errorf("write hello: %w", err)
		}
	}
	shared, err := priv.ECDH(pub)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("key agreement: %w", err)
	}
	helloC, helloS := mine, theirs
	if !client {
		helloC, helloS = theirs, mine
	}
	h := sha256.New()
	h.Write([]byte("herd/channel/v1 transcript"))
	h.Write(helloC)
	h.Write(helloS)
	th = h.Sum(nil)
	keys, err := hkdf.Key(sha256.New, shared, k.auth, "herd/channel/v1 record keys\x00"+string(th), 64)
	if err != nil {
		return nil, nil, nil, err
	}
	c2s, err := newRecordCipher(keys[:32])
	if err != nil {
		return nil, nil, nil, err
	}
	s2c, err := newRecordCipher(keys[32:])
	if err != nil {
		return nil, nil, nil, err
	}
	if client {
		return th, c2s, s2c, nil
	}
	return th, s2c, c2s, nil
}

// clientHandshake authenticates a dialled connection as member name asking
// for a connection of the given kind. The caller sets the deadline.
func (k clusterKeys) clientHandshake(r io.Reader, w io.Writer, name string, kind byte) (*session, error) {
	th, send, recv, err := k.exchange(r, w, true)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	rec := newRecord(kindAuth, 0, 0, encodeAuth(kind, name, k.mac("client", th, kind, name)))
	if err := send.seal(rec); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	if _, err := w.Write(rec); err != nil {
		return nil, fmt.Errorf("%w: write auth: %w", ErrHandshake, err)
	}
	f, _, err := readRecord(r, recv, maxAuthBody)
	if err != nil {
		return nil, fmt.Errorf("%w: read server auth (wrong secret?): %w", ErrHandshake, err)
	}
	gotKind, peer, mac, err := parseAuth(f)
	if err != nil {
		return nil, fmt.Errorf("%w: server auth: %w", ErrHandshake, err)
	}
	if gotKind != kind || !hmac.Equal(mac, k.mac("server", th, kind, peer)) {
		return nil, fmt.Errorf("%w: server auth does not verify", ErrHandshake)
	}
	return &session{send: send, recv: recv, peer: peer, kind: kind}, nil
}

// serverHandshake authenticates an accepted connection as member name. The
// caller sets the deadline.
func (k clusterKeys) serverHandshake(r io.Reader, w io.Writer, name string) (*session, error) {
	th, send, recv, err := k.exchange(r, w, false)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	f, _, err := readRecord(r, recv, maxAuthBody)
	if err != nil {
		if errors.Is(err, ErrBadFrame) {
			err = fmt.Errorf("wrong secret or not a herd member: %w", err)
		}
		return nil, fmt.Errorf("%w: read client auth: %w", ErrHandshake, err)
	}
	kind, peer, mac, err := parseAuth(f)
	if err != nil {
		return nil, fmt.Errorf("%w: client auth: %w", ErrHandshake, err)
	}
	if !hmac.Equal(mac, k.mac("client", th, kind, peer)) {
		return nil, fmt.Errorf("%w: client auth does not verify", ErrHandshake)
	}
	rec := newRecord(kindAuth, 0, 0, encodeAuth(kind, name, k.mac("server", th, kind, name)))
	if err := send.seal(rec); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	if _, err := w.Write(rec); err != nil {
		return nil, fmt.Errorf("%w: write auth: %w", ErrHandshake, err)
	}
	return &session{send: send, recv: recv, peer: peer, kind: kind}, nil
}
