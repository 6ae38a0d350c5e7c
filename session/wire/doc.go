// Package wire holds the formats that cross a process boundary on behalf of
// HTTP sessions, so that both the herd node and the apps it runs can import
// them without importing the node:
//
//   - the header protocol between the node and an app that runs as a separate
//     process: the node passes the session in the [RequestHeader] request
//     header (see [EncodeRequest]) and the app answers with its changes in the
//     [UpdateHeader] response header (see [EncodeUpdate]). Both are base64url
//     JSON, so an app in any language can speak them; docs/session-protocol.md
//     describes them byte by byte.
//   - the typed value codec ([Registry.EncodeValue], [Registry.DecodeValue])
//     that Go apps use to keep the Go types of gorilla/sessions values across
//     a round trip through the session's opaque attribute bytes.
//
// Every decoder here takes untrusted input: it bounds every length by the
// input's size, never instantiates a type that was not registered, and
// returns an error naming the problem instead of panicking.
package wire
