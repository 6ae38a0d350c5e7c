package wire

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/herdproject/herd/membership"
	"github.com/vmihailenco/msgpack/v5"
)

// ErrMalformed marks a record that could not be decoded or failed validation.
var ErrMalformed = errors.New("malformed member record")

// Record is a member's self-description as carried on the wire.
type Record struct {
	Cluster string // the sender's cluster name
	Rev     uint64 // revision within one incarnation; grows with each UpdateLocal
	Partial bool   // Apps and Extra were left out to fit a size limit
	Leaving bool   // the member is leaving gracefully
	Member  membership.Member
}

type wireApp struct {
	Name    string `msgpack:"n"`
	Version string `msgpack:"v,omitempty"`
	Context string `msgpack:"c,omitempty"`
}

type wireRecord struct {
	Cluster  string            `msgpack:"cl"`
	Name     string            `msgpack:"n"`
	Route    string            `msgpack:"r"`
	Role     int               `msgpack:"ro,omitempty"`
	HTTP     string            `msgpack:"h,omitempty"`
	Channel  string            `msgpack:"ch,omitempty"`
	Inc      uint64            `msgpack:"i"`
	Rev      uint64            `msgpack:"rv,omitempty"`
	Partial  bool              `msgpack:"p,omitempty"`
	Leaving  bool              `msgpack:"lv,omitempty"`
	Version  string            `msgpack:"v,omitempty"`
	Draining bool              `msgpack:"d,omitempty"`
	Apps     []wireApp         `msgpack:"a,omitempty"`
	Extra    map[string]string `msgpack:"x,omitempty"`
}

// Encode validates r and encodes it. Map keys are sorted, so equal records
// encode to equal bytes. It returns membership.ErrRecordTooLarge (wrapped)
// past membership.MaxRecordSize.
func Encode(r Record) ([]byte, error) {
	if err := validate(r); err != nil {
		return nil, err
	}
	m := r.Member
	w := wireRecord{Cluster: r.Cluster, Name: m.Name, Route: m.Route, Role: int(m.Role),
		HTTP: m.HTTPAddr, Channel: m.ChannelAddr, Inc: m.Incarnation, Rev: r.Rev,
		Partial: r.Partial, Leaving: r.Leaving, Version: m.Meta.Version, Draining: m.Meta.Draining, Extra: m.Meta.Extra}
	for _, a := range m.Meta.Apps {
		w.Apps = append(w.Apps, wireApp(a))
	}
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.SetSortMapKeys(true)
	if err := enc.Encode(&w); err != nil {
		return nil, fmt.Errorf("encode member record: %w", err)
	}
	if buf.Len() > membership.MaxRecordSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", membership.ErrRecordTooLarge, buf.Len(), membership.MaxRecordSize)
	}
	return buf.Bytes(), nil
}

// Decode decodes and validates a record. Errors wrap ErrMalformed; it never
// panics, and allocates at most a small multiple of len(b).
func Decode(b []byte) (rec Record, err error) {
	defer func() { // msgpack/v5 panics on a few malformed inputs (nil for a struct value)
		if x := recover(); x != nil {
			rec, err = Record{}, fmt.Errorf("%w: %v", ErrMalformed, x)
		}
	}()
	if len(b) > membership.MaxRecordSize {
		return Record{}, fmt.Errorf("%w: %d bytes, limit %d", ErrMalformed, len(b), membership.MaxRecordSize)
	}
	if err := skim(b); err != nil {
		return Record{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	var w wireRecord
	if err := msgpack.Unmarshal(b, &w); err != nil {
		return Record{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	r := Record{Cluster: w.Cluster, Rev: w.Rev, Partial: w.Partial, Leaving: w.Leaving, Member: membership.Member{
		Name: w.Name, Route: w.Route, Role: membership.Role(w.Role), HTTPAddr: w.HTTP,
		ChannelAddr: w.Channel, Incarnation: w.Inc,
		Meta: membership.Meta{Version: w.Version, Draining: w.Draining},
	}}
	if len(w.Apps) > 0 {
		r.Member.Meta.Apps = make([]membership.App, len(w.Apps))
		for i, a := range w.Apps {
			r.Member.Meta.Apps[i] = membership.App(a)
		}
	}
	if len(w.Extra) > 0 {
		r.Member.Meta.Extra = w.Extra
	}
	if err := validate(r); err != nil {
		return Record{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return r, nil
}

// Compact returns r without Apps and Extra, marked Partial.
func Compact(r Record) Record {
	r.Member = r.Member.Clone()
	r.Member.Meta.Apps = nil
	r.Member.Meta.Extra = nil
	r.Partial = true
	return r
}

func validate(r Record) error {
	if !membership.ValidName(r.Cluster) {
		return &membership.FieldError{Field: "Cluster", Reason: fmt.Sprintf("%q is not a valid cluster name", r.Cluster)}
	}
	if r.Member.Incarnation == 0 {
		return &membership.FieldError{Field: "Incarnation", Reason: "is zero"}
	}
	return r.Member.Validate()
}
