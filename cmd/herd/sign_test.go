package main

import (
	"crypto/ed25519"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/herdproject/herd/bundle"
	"github.com/herdproject/herd/farming"
	"github.com/herdproject/herd/internal/testapps"
)

func TestKeygenAndSign(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "k")
	out, err := exec.Command(herdBin, "keygen", "-o", key).CombinedOutput()
	if err != nil {
		t.Fatalf("herd keygen: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`signing.keys:\s+(\S+)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("no public key printed:\n%s", out)
	}
	pub, err := farming.ParsePublicKeys([]string{m[1]})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(key); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("private key file: %v %v", st, err)
	}
	if out, err := exec.Command(herdBin, "keygen", "-o", key).CombinedOutput(); err == nil {
		t.Fatalf("keygen overwrote an existing key:\n%s", out)
	}
	b := filepath.Join(dir, "hello.zip")
	data, err := os.ReadFile(testapps.Bundle(t, "hello", "hello.zip"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(herdBin, "sign", "--key", key, b).CombinedOutput(); err != nil {
		t.Fatalf("herd sign: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(b + ".sig")
	if err != nil {
		t.Fatal(err)
	}
	sig, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	sum, err := bundle.SHA256File(b)
	if err != nil {
		t.Fatal(err)
	}
	if !ed25519.Verify(pub[0], farming.SignedMessage("hello.zip", sum), sig) {
		t.Fatal("the signature herd sign wrote does not verify with the printed public key")
	}
	if out, err := exec.Command(herdBin, "sign", "--key", b, b).CombinedOutput(); err == nil || !strings.Contains(string(out), "not a base64 ed25519 seed") {
		t.Fatalf("sign with a bad key file: %v\n%s", err, out)
	}
}
