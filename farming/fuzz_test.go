package farming

import (
	"strings"
	"testing"

	"github.com/herdproject/herd/channel"
)

// FuzzLedger feeds arbitrary bodies to the ledger decoder (pulls and pushes from peers): it must
// never panic, and what it accepts must merge and re-encode.
func FuzzLedger(f *testing.F) {
	b, _ := encodeEntries([]Entry{entry("shop##2", "node1", "a", 7, false), entry("blog", "node2", "b", 9, true)})
	f.Add(b)
	f.Add([]byte{0x80})
	f.Add([]byte{0x81, 0xa1, 'e', 0x91, 0x80})
	f.Fuzz(func(t *testing.T, body []byte) {
		es, err := decodeEntries(body, 64, 1<<30)
		if err != nil {
			return
		}
		l := newLedger()
		l.merge(es)
		_ = l.digest()
		_ = computePlan(l.list(), true)
		if _, err := encodeEntries(l.list()); err != nil {
			t.Fatalf("accepted entries do not re-encode: %v", err)
		}
	})
}

// FuzzBundleRef feeds arbitrary fetch requests and stream headers to their decoder.
func FuzzBundleRef(f *testing.F) {
	b, _ := channel.Encode(bundleRef{SHA256: strings.Repeat("a", 64), File: "shop##1.zip", Size: 10})
	f.Add(b)
	f.Add([]byte{0x83})
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := decodeRef(body, 1<<30)
		if err != nil {
			return
		}
		if !isSHA256(r.SHA256) || r.Size < 0 || strings.ContainsAny(r.File, `/\`) {
			t.Fatalf("bad ref accepted: %+v", r)
		}
	})
}

// FuzzState feeds arbitrary state files to their decoder.
func FuzzState(f *testing.F) {
	f.Add([]byte(`{"version":1,"entries":[],"watch":{}}`))
	f.Add([]byte(`{"version":1,"entries":[{"key":"x"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, _, err := decodeState(b, 1<<30, 16)
		if err != nil {
			return
		}
		for _, e := range st.Entries {
			if err := e.Validate(1 << 30); err != nil {
				t.Fatalf("invalid entry kept: %v", err)
			}
		}
	})
}
