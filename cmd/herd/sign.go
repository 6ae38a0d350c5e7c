package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/herdproject/herd/farming"
)

// runKeygen makes an ed25519 key pair for bundle signatures: the private key goes to a file (mode
// 0600), the public key is printed for cluster.farm.signing.keys.
func runKeygen(_ context.Context, args []string, stdout, _ io.Writer) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	out := fs.String("o", "herd-signing.key", "file for the private key (must not exist)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", pos[0])}
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintln(f, base64.StdEncoding.EncodeToString(priv.Seed())); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "private key written to %s (keep it secret)\npublic key for cluster.farm.signing.keys:\n  %s\n",
		*out, base64.StdEncoding.EncodeToString(pub))
	return err
}

// runSign writes BUNDLE.sig, the detached signature farming checks when signing is required.
func runSign(_ context.Context, args []string, stdout, _ io.Writer) error {
	fs := flag.NewFlagSet("sign", flag.ContinueOnError)
	keyFile := fs.String("key", "herd-signing.key", "private key file written by herd keygen")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"need exactly one bundle file"}
	}
	raw, err := os.ReadFile(*keyFile)
	if err != nil {
		return err
	}
	seed, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return errors.New("key file " + *keyFile + ": not a base64 ed25519 seed written by herd keygen")
	}
	sig, err := farming.SignFile(ed25519.NewKeyFromSeed(seed), pos[0])
	if err != nil {
		return err
	}
	if err := os.WriteFile(pos[0]+farming.SigSuffix, sig, 0o644); err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "signed %s: %s%s (drop both into the farm dir)\n", pos[0], pos[0], farming.SigSuffix)
	return err
}
