package channel

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

func fuzzKeys(f *testing.F) clusterKeys {
	k, err := deriveClusterKeys(testSecret, "test", 1000)
	if err != nil {
		f.Fatal(err)
	}
	return k
}

func validHello(f *testing.F, k clusterKeys) []byte {
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	return encodeHello(k.tag, priv.PublicKey().Bytes())
}

// FuzzHandshake feeds bytes to a member as if from a dialling client: in
// memory to the server handshake, then over TCP to a running Channel,
// which must refuse without panicking or leaking goroutines.
func FuzzHandshake(f *testing.F) {
	k := fuzzKeys(f)
	hello := validHello(f, k)
	f.Add([]byte{})
	f.Add([]byte("HERD"))
	f.Add(hello)
	f.Add(append(append([]byte{}, hello...), 0, 0, 0, 40))
	f.Add(append(append([]byte{}, hello...), 0xff, 0xff, 0xff, 0xff))
	f.Add(append(append([]byte{}, hello...), make([]byte, 100)...))
	f.Add(append([]byte("HERD\x01"), make([]byte, 40)...))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))

	checkGoroutines(f)
	cfg := testConfig(f, "server")
	cfg.HandshakeTimeout = 500 * time.Millisecond
	cfg.Logger = nil
	srv := startChannel(f, cfg)
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := k.serverHandshake(bytes.NewReader(data), io.Discard, "server")
		if err == nil || s != nil || !errors.Is(err, ErrHandshake) {
			t.Fatalf("handshake from fuzz bytes: session %v, err %v", s, err)
		}
		nc, err := net.Dial("tcp", srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		_, _ = nc.Write(data)
		_ = nc.(*net.TCPConn).CloseWrite()
		_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.Copy(io.Discard, nc); err != nil && !errors.Is(err, net.ErrClosed) {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("server kept the connection open")
			}
		}
	})
}

// FuzzAuthRecord completes a genuine key exchange, then sends the fuzz
// bytes as the plaintext of the client's auth record: the server must
// refuse it (the MAC cannot be forged) and never panic.
func FuzzAuthRecord(f *testing.F) {
	k := fuzzKeys(f)
	f.Add([]byte{})
	f.Add([]byte{kindAuth, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	good := newRecord(kindAuth, 0, 0, encodeAuth(connMessages, "a", make([]byte, macLen)))
	f.Add(good[lenSize : len(good)-tagSize])
	f.Add(append([]byte{kindAuth, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, protoVersion, connStream, 200))
	f.Fuzz(func(t *testing.T, plain []byte) {
		if len(plain) > maxAuthBody+hdrLen+16 {
			return
		}
		cc, sc := net.Pipe()
		defer cc.Close()
		done := make(chan error, 1)
		go func() {
			_, err := k.serverHandshake(sc, sc, "server")
			sc.Close()
			done <- err
		}()
		_, send, _, err := k.exchange(cc, cc, true)
		if err != nil {
			t.Fatalf("exchange: %v", err)
		}
		rec := make([]byte, lenSize+len(plain)+tagSize)
		copy(rec[lenSize:], plain)
		if err := send.seal(rec); err != nil {
			t.Fatal(err)
		}
		_, _ = cc.Write(rec)
		cc.Close()
		if err := <-done; !errors.Is(err, ErrHandshake) {
			t.Fatalf("server accepted a forged auth record: %v", err)
		}
	})
}

// FuzzFrameDecode checks the frame parser and the record reader.
func FuzzFrameDecode(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{kindRequest, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9, 'h', 'i'})
	f.Add([]byte{99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 40, 1, 2, 3})
	f.Add(bytes.Repeat([]byte{0xff}, 64))
	key := bytes.Repeat([]byte{7}, 32)
	const maxBody = 1024
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, perr := parseFrame(data)
		if perr == nil {
			rec := newRecord(fr.kind, fr.typ, fr.id, fr.body)
			if !bytes.Equal(rec[lenSize:len(rec)-tagSize], data) {
				t.Fatalf("frame %+v re-encodes differently", fr)
			}
		} else if !errors.Is(perr, ErrBadFrame) {
			t.Fatalf("parse error %v does not wrap ErrBadFrame", perr)
		}

		// As wire bytes: no forged record may open.
		rc, _ := newRecordCipher(key)
		if _, _, err := readRecord(bytes.NewReader(data), rc, maxBody); err == nil {
			t.Fatal("unsealed bytes opened as a record")
		}

		// Sealed properly, the reader must agree with the parser.
		seal, _ := newRecordCipher(key)
		open, _ := newRecordCipher(key)
		rec := make([]byte, lenSize+len(data)+tagSize)
		copy(rec[lenSize:], data)
		if err := seal.seal(rec); err != nil {
			t.Fatal(err)
		}
		got, n, err := readRecord(bytes.NewReader(rec), open, maxBody)
		switch {
		case len(data) > maxBody+hdrLen || len(data) < hdrLen:
			if !errors.Is(err, ErrBadFrame) {
				t.Fatalf("%d-byte plaintext: got %v, want ErrBadFrame", len(data), err)
			}
		case (err == nil) != (perr == nil):
			t.Fatalf("reader says %v, parser says %v", err, perr)
		case err == nil && (n != len(rec) || got.kind != fr.kind || got.id != fr.id || !bytes.Equal(got.body, fr.body)):
			t.Fatalf("reader %+v (%d bytes), parser %+v", got, n, fr)
		}
	})
}

// FuzzDecode checks the msgpack body decoder.
func FuzzDecode(f *testing.F) {
	good, err := Encode(testDelta{ID: "a.node1", Version: 3, Set: map[string][]byte{"k": {1}}, At: time.Unix(5, 6)})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte{0xc0})
	f.Add([]byte{0x81, 0xa2, 'i', 'd', 0xd4, 0x05, 0x00})
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0x81, 0xa2, 'a', 't', 0xd7, 0xff, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		var d testDelta
		if err := Decode(data, &d); err != nil {
			if !errors.Is(err, ErrCodec) {
				t.Fatalf("error %v does not wrap ErrCodec", err)
			}
			return
		}
		if _, err := Encode(d); err != nil {
			t.Fatalf("decoded %+v does not re-encode: %v", d, err)
		}
	})
}
