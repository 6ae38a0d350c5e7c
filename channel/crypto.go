package channel

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

const (
	protoVersion = 1
	tagSize      = 16        // AES-GCM tag
	lenSize      = 4         // record length prefix
	hdrLen       = 1 + 2 + 8 // frame header: kind, type, id
	overhead     = hdrLen + tagSize
	maxRecords   = uint64(1) << 32 // records per direction before the connection must be redialled
	pbkdf2Iter   = 100_000
)

// clusterKeys is what the cluster secret and name derive, once per Channel.
type clusterKeys struct {
	auth []byte  // HMAC key for the handshake, salt of the session key HKDF
	tag  [8]byte // cluster tag sent in the hello
}

// deriveClusterKeys stretches the secret with iter PBKDF2 rounds (0 means
// pbkdf2Iter).
func deriveClusterKeys(secret []byte, cluster string, iter int) (clusterKeys, error) {
	var k clusterKeys
	if iter == 0 {
		iter = pbkdf2Iter
	}
	auth, err := pbkdf2.Key(sha256.New, string(secret), []byte("herd/channel/v1 auth key\x00"+cluster), iter, 32)
	if err != nil {
		return k, fmt.Errorf("channel: derive auth key: %w", err)
	}
	k.auth = auth
	sum := sha256.Sum256([]byte("herd/channel/v1 cluster tag\x00" + cluster))
	copy(k.tag[:], sum[:])
	return k, nil
}

// mac authenticates one side of the handshake transcript.
func (k clusterKeys) mac(role string, th []byte, kind byte, name string) []byte {
	h := hmac.New(sha256.New, k.auth)
	h.Write([]byte(role))
	h.Write(th)
	h.Write([]byte{kind})
	h.Write([]byte(name))
	return h.Sum(nil)
}

var errRecordAuth = errors.New("record failed authentication (wrong key, replayed, reordered or altered)")

// recordCipher seals or opens the records of one direction, numbering them
// so that each record has its own nonce and must arrive in order.
type recordCipher struct {
	aead  cipher.AEAD
	seq   uint64
	nonce [12]byte
}

func newRecordCipher(key []byte) (*recordCipher, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &recordCipher{aead: aead}, nil
}

func (r *recordCipher) next() ([]byte, error) {
	if r.seq >= maxRecords {
		return nil, errors.New("record counter exhausted")
	}
	binary.BigEndian.PutUint64(r.nonce[4:], r.seq)
	r.seq++
	return r.nonce[:], nil
}

// seal encrypts rec in place. rec is the length prefix, the plaintext and
// tagSize spare bytes; the prefix is written here and authenticated.
func (r *recordCipher) seal(rec []byte) error {
	nonce, err := r.next()
	if err != nil {
		return err
	}
	binary.BigEndian.PutUint32(rec, uint32(len(rec)-lenSize))
	plain := rec[lenSize : len(rec)-tagSize]
	r.aead.Seal(plain[:0], nonce, plain, rec[:lenSize])
	return nil
}

// open decrypts body (the record after its prefix) in place and returns the
// plaintext.
func (r *recordCipher) open(prefix, body []byte) ([]byte, error) {
	nonce, err := r.next()
	if err != nil {
		return nil, err
	}
	plain, err := r.aead.Open(body[:0], nonce, body, prefix)
	if err != nil {
		return nil, errRecordAuth
	}
	return plain, nil
}
