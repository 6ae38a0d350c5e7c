package farming

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/herdproject/herd/bundle"
)

// SigSuffix is appended to a bundle's file name to name its detached signature file.
const SigSuffix = ".sig"

// maxSigFile bounds the signature file read from the watch directory.
const maxSigFile = 1024

// Signature errors, wrapped with the bundle's name.
var (
	// ErrUnsigned: signatures are required and the bundle has none.
	ErrUnsigned = errors.New("bundle is not signed")
	// ErrBadSignature: the signature matches none of the configured keys.
	ErrBadSignature = errors.New("bundle signature does not verify with any configured key")
)

// SignedMessage is what a bundle signature signs: a fixed label, the bundle file name and the
// lowercase hex sha256 of the bundle file, one per line.
func SignedMessage(file, sha256hex string) []byte {
	return []byte("herd bundle signature v1\n" + file + "\n" + sha256hex + "\n")
}

// SignFile signs the bundle at path with key and returns the content of its ".sig" file: the
// base64 signature and a newline.
func SignFile(key ed25519.PrivateKey, path string) ([]byte, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("farming: sign: private key is %d bytes, want %d", len(key), ed25519.PrivateKeySize)
	}
	if _, err := bundle.ParseFileName(filepath.Base(path)); err != nil {
		return nil, fmt.Errorf("farming: sign: %w", err)
	}
	sum, err := bundle.SHA256File(path)
	if err != nil {
		return nil, fmt.Errorf("farming: sign: %w", err)
	}
	sig := ed25519.Sign(key, SignedMessage(filepath.Base(path), sum))
	return []byte(base64.StdEncoding.EncodeToString(sig) + "\n"), nil
}

// readSigFile reads path+".sig": nil without error when there is none.
func readSigFile(path string) ([]byte, error) {
	f, err := os.Open(path + SigSuffix)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, maxSigFile+1)
	n, _ := f.Read(buf)
	if n > maxSigFile {
		return nil, fmt.Errorf("%s%s is larger than %d bytes", filepath.Base(path), SigSuffix, maxSigFile)
	}
	sig, err := decodeBase64(string(buf[:n]))
	if err != nil {
		return nil, fmt.Errorf("%s%s is not base64: %w", filepath.Base(path), SigSuffix, err)
	}
	if len(sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%s%s holds %d bytes, an ed25519 signature has %d", filepath.Base(path), SigSuffix, len(sig), ed25519.SignatureSize)
	}
	return sig, nil
}

// checkSignature applies the signing policy to a bundle's file name, digest and signature. Without
// Required, a signature is still checked when keys are configured, so a bad one is never accepted.
func checkSignature(s Signing, file, sum string, sig []byte) error {
	if len(sig) == 0 {
		if s.Required {
			return fmt.Errorf("farming: %s: %w (signatures are required: add %s%s)", file, ErrUnsigned, file, SigSuffix)
		}
		return nil
	}
	if len(s.Keys) == 0 {
		return nil
	}
	msg := SignedMessage(file, sum)
	for _, k := range s.Keys {
		if ed25519.Verify(k, msg, sig) {
			return nil
		}
	}
	return fmt.Errorf("farming: %s: %w", file, ErrBadSignature)
}
