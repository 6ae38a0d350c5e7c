package channel

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// testPKI writes a CA and a member certificate for 127.0.0.1 signed by it
// into dir and returns the three file paths.
func testPKI(t *testing.T, dir string) (certFile, keyFile, caFile string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		must(os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
		return path
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "herd test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	must(err)
	ca, err := x509.ParseCertificate(caDER)
	must(err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "member"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	must(err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	must(err)
	return write("member.pem", "CERTIFICATE", der), write("member-key.pem", "EC PRIVATE KEY", keyDER),
		write("ca.pem", "CERTIFICATE", caDER)
}

func TestTLS(t *testing.T) {
	checkGoroutines(t)
	certFile, keyFile, caFile := testPKI(t, t.TempDir())
	tlsCfg, err := LoadTLSConfig(certFile, keyFile, caFile)
	if err != nil {
		t.Fatal(err)
	}
	bcfg := testConfig(t, "b")
	bcfg.TLS = tlsCfg
	b := startChannel(t, bcfg, func(c *Channel) { c.Handle(1, echo) })
	ctx := context.Background()

	acfg := testConfig(t, "a")
	acfg.TLS = tlsCfg
	a := startChannel(t, acfg)
	if reply, err := a.Request(ctx, b.Addr(), Message{Type: 1, Body: []byte("x")}); err != nil || string(reply) != "a:x" {
		t.Fatalf("request over TLS: %q, %v", reply, err)
	}

	otherCert, otherKey, otherCA := testPKI(t, t.TempDir())
	foreign, err := LoadTLSConfig(otherCert, otherKey, otherCA)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		tls  *tls.Config
	}{
		{"plain TCP client", nil},
		{"certificate from another CA", foreign},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, "m")
			cfg.TLS = tc.tls
			m := startChannel(t, cfg)
			before := b.Stats().HandshakeFailures
			if _, err := m.Request(ctx, b.Addr(), Message{Type: 1}); !errors.Is(err, ErrHandshake) {
				t.Fatalf("got %v, want ErrHandshake", err)
			}
			waitFor(t, 5*time.Second, "the server to count the failure", func() bool {
				return b.Stats().HandshakeFailures > before
			})
		})
	}
}

func TestLoadTLSConfigErrors(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _ := testPKI(t, dir)
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, cert, key, ca string }{
		{"missing cert", filepath.Join(dir, "nope.pem"), keyFile, certFile},
		{"key is not a key", certFile, certFile, certFile},
		{"missing CA", certFile, keyFile, filepath.Join(dir, "nope.pem")},
		{"CA without PEM", certFile, keyFile, notPEM},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := LoadTLSConfig(tc.cert, tc.key, tc.ca); err == nil {
				t.Fatal("no error")
			}
		})
	}
}
