package router

import (
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"net/http"
	"strings"
)

// Trace headers the router reads and writes.
const (
	hdrTraceparent = "Traceparent"
	hdrTracestate  = "Tracestate"
	hdrB3          = "B3"
	hdrB3TraceID   = "X-B3-Traceid"
	hdrB3SpanID    = "X-B3-Spanid"
	hdrB3Parent    = "X-B3-Parentspanid"
	hdrB3Sampled   = "X-B3-Sampled"
	hdrB3Flags     = "X-B3-Flags"
	hdrRequestID   = "X-Request-Id"
)

// traceCtx is the router's span of a trace: the trace it belongs to (continued from the client's
// traceparent or B3 headers, or new), the client's span as parent, and the router's own span id.
type traceCtx struct {
	traceID   string // 32 lowercase hex (traceparent form)
	b3TraceID string // as B3 carries it: 16 or 32 lowercase hex
	parent    string // client's span id, 16 hex, "" for a new trace
	span      string // router's span id, 16 hex
	sampled   bool
	keepState bool // a valid traceparent came in: forward its tracestate
}

// traceIn is what a request carries of a trace: the first value of each trace header.
type traceIn struct {
	traceparent, b3, b3Trace, b3Span, b3Sampled, b3Flags string
}

// traceOf reads the trace headers of h.
func traceOf(h http.Header) traceIn {
	return traceIn{traceparent: h.Get(hdrTraceparent), b3: h.Get(hdrB3), b3Trace: h.Get(hdrB3TraceID),
		b3Span: h.Get(hdrB3SpanID), b3Sampled: h.Get(hdrB3Sampled), b3Flags: h.Get(hdrB3Flags)}
}

// newTrace continues the request's trace or starts one. Malformed trace headers are ignored.
func newTrace(in traceIn) traceCtx {
	ids := newIDs() // the router's span id, and a new trace's id
	t := traceCtx{span: ids[32:], sampled: true}
	if v := in.traceparent; v != "" {
		if trace, parent, flags, ok := parseTraceparent(v); ok {
			t.traceID, t.b3TraceID, t.parent, t.sampled, t.keepState = trace, trace, parent, flags&1 == 1, true
			return t
		}
	}
	if trace, span, sampled, ok := parseB3Multi(in); ok {
		t.traceID, t.b3TraceID, t.parent, t.sampled = padTrace(trace), trace, span, sampled
		return t
	}
	if v := in.b3; v != "" {
		if trace, span, sampled, ok := parseB3Single(v); ok {
			t.traceID, t.b3TraceID, t.parent, t.sampled = padTrace(trace), trace, span, sampled
			return t
		}
	}
	t.traceID = ids[:32]
	t.b3TraceID = t.traceID
	return t
}

// apply writes the trace headers of the outgoing request.
func (t *traceCtx) apply(st *reqState, h http.Header) {
	flags := "00"
	sampled := "0"
	if t.sampled {
		flags, sampled = "01", "1"
	}
	st.setHeader(h, hdrTraceparent, "00-"+t.traceID+"-"+t.span+"-"+flags)
	if !t.keepState {
		delete(h, hdrTracestate)
	}
	st.setHeader(h, hdrB3TraceID, t.b3TraceID)
	st.setHeader(h, hdrB3SpanID, t.span)
	if t.parent != "" {
		st.setHeader(h, hdrB3Parent, t.parent)
	} else {
		delete(h, hdrB3Parent)
	}
	st.setHeader(h, hdrB3Sampled, sampled)
	delete(h, hdrB3)
	delete(h, hdrB3Flags)
}

// parseTraceparent parses a W3C traceparent ("00-<32 hex>-<16 hex>-<2 hex>"). Version ff, all-zero
// ids, upper case and a version-00 header with extra fields are invalid; a later version may carry
// more fields after a '-'.
func parseTraceparent(v string) (traceID, parentID string, flags byte, ok bool) {
	v = strings.Trim(v, " \t")
	if len(v) < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return "", "", 0, false
	}
	version, trace, parent, fl := v[0:2], v[3:35], v[36:52], v[53:55]
	if !lowerHex(version) || version == "ff" || !lowerHex(trace) || !lowerHex(parent) || !lowerHex(fl) {
		return "", "", 0, false
	}
	if (version == "00" && len(v) != 55) || (len(v) > 55 && v[55] != '-') {
		return "", "", 0, false
	}
	if allZero(trace) || allZero(parent) {
		return "", "", 0, false
	}
	b, _ := hex.DecodeString(fl)
	return trace, parent, b[0], true
}

// parseB3Multi reads X-B3-TraceId (16 or 32 hex), X-B3-SpanId (16 hex) and X-B3-Sampled/Flags.
func parseB3Multi(in traceIn) (traceID, spanID string, sampled, ok bool) {
	traceID, spanID = strings.ToLower(in.b3Trace), strings.ToLower(in.b3Span)
	if !validTraceID(traceID) || !validSpanID(spanID) {
		return "", "", false, false
	}
	sampled = true
	switch s := in.b3Sampled; s {
	case "0", "false":
		sampled = false
	}
	if in.b3Flags == "1" {
		sampled = true
	}
	return traceID, spanID, sampled, true
}

// parseB3Single reads the single b3 header "<trace>-<span>[-<sampling>[-<parent>]]"; a bare sampling
// decision ("0", "1", "d") carries no ids and is not ok.
func parseB3Single(v string) (traceID, spanID string, sampled, ok bool) {
	parts := strings.Split(strings.ToLower(strings.Trim(v, " \t")), "-")
	if len(parts) < 2 || len(parts) > 4 || !validTraceID(parts[0]) || !validSpanID(parts[1]) {
		return "", "", false, false
	}
	sampled = true
	if len(parts) >= 3 {
		switch parts[2] {
		case "0":
			sampled = false
		case "1", "d":
		default:
			return "", "", false, false
		}
	}
	if len(parts) == 4 && !validSpanID(parts[3]) {
		return "", "", false, false
	}
	return parts[0], parts[1], sampled, true
}

func validTraceID(s string) bool { return (len(s) == 16 || len(s) == 32) && lowerHex(s) && !allZero(s) }
func validSpanID(s string) bool  { return len(s) == 16 && lowerHex(s) && !allZero(s) }

// padTrace widens a 64-bit B3 trace id to traceparent's 128 bits.
func padTrace(s string) string {
	if len(s) == 16 {
		return "0000000000000000" + s
	}
	return s
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return s != ""
}

func allZero(s string) bool { return strings.Trim(s, "0") == "" }

// newIDs returns 48 random hex digits in one string (one allocation): a trace id (the first 32)
// and a span id, neither all zero.
func newIDs() string {
	var b [48]byte
	putHex(b[:16], rand.Uint64())
	putHex(b[16:32], rand.Uint64()|1)
	putHex(b[32:], rand.Uint64()|1)
	return string(b[:])
}

// putHex writes v as 16 lower-case hex digits into dst, eight at a time.
func putHex(dst []byte, v uint64) {
	binary.BigEndian.PutUint64(dst[:8], hexDigits(uint32(v>>32)))
	binary.BigEndian.PutUint64(dst[8:16], hexDigits(uint32(v)))
}

// hexDigits returns the eight hex digits of x as the bytes of a word, the most significant digit
// in the top byte: each nibble is spread to a byte of its own, then turned into '0'-'9' or 'a'-'f'
// all at once (a byte of 10 or more gets the 39 that separate '9'+1 from 'a').
func hexDigits(x uint32) uint64 {
	v := uint64(x)
	v = (v | v<<16) & 0x0000ffff0000ffff
	v = (v | v<<8) & 0x00ff00ff00ff00ff
	v = (v | v<<4) & 0x0f0f0f0f0f0f0f0f
	letters := (v + 0x0606060606060606) >> 4 & 0x0101010101010101
	return v + 0x3030303030303030 + letters*39
}

// requestID is the client's X-Request-Id (id) when it is a sane token (at most 128 characters of
// letters, digits, '-', '_', '.', ':'), else fallback.
func requestID(id, fallback string) string {
	if id == "" || len(id) > 128 {
		return fallback
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return fallback
		}
	}
	return id
}
