// Package channel is herd's cluster channel: authenticated, encrypted,
// framed TCP between the members of one cluster (what Tribes is to Tomcat).
// Session replication and bundle farming are built on it.
//
// # Model
//
// A [Channel] listens on [Config.Bind] and dials peers by address. To each
// peer it keeps a pool of up to [Config.PoolSize] connections, dialled on
// demand and redialled with exponential backoff after a failure. The channel
// moves opaque typed messages ([Message]); encoding bodies is the caller's
// business ([Encode] and [Decode] help with msgpack).
//
//   - [Channel.Send] is fire-and-forget; all Sends to one peer go over the
//     pool's first connection, so the peer handles them in the order they
//     were sent (as long as that connection lives).
//   - [Channel.Request] waits for the peer handler's reply (an ack when the
//     reply is empty) and uses the least busy pooled connection, growing the
//     pool under concurrency, so concurrent requests do not queue behind each
//     other. A handler runs on its connection's reader: one message at a time
//     per connection.
//   - [Channel.OpenStream] sends a large payload (a bundle) as a sequence of
//     chunks on a dedicated connection with credit-based flow control, so a
//     transfer never delays session traffic.
//
// # Wire protocol (version 1)
//
// Every connection (optionally inside TLS) starts with a handshake that runs
// under [Config.HandshakeTimeout]:
//
//	C -> S  hello  "HERD" 0x01 clusterTag[8] x25519Pub[32]
//	S -> C  hello  "HERD" 0x01 clusterTag[8] x25519Pub[32]
//	        th   = SHA-256("herd/channel/v1 transcript" || helloC || helloS)
//	        keys = HKDF-SHA256(secret=X25519(e, E'), salt=authKey, info=label||th)
//	               -> 32-byte AES-256-GCM key per direction
//	C -> S  auth record: version kind nameLen name HMAC(authKey, "client"||th||kind||name)
//	S -> C  auth record: version kind nameLen name HMAC(authKey, "server"||th||kind||name)
//
// authKey is PBKDF2-HMAC-SHA256 of the cluster secret, salted with the
// cluster name; clusterTag is a hash of the cluster name so that a member of
// another cluster is refused with a clear log line. A peer without the
// secret cannot decrypt or forge the auth record and is disconnected. The
// server proves itself only after the client has.
//
// After the handshake every frame is a record:
//
//	uint32 length (big endian) || AES-GCM(seal(kind[1] type[2] id[8] body))
//
// with the length as additional data and the per-direction record counter as
// nonce, so a frame that is replayed, reordered, truncated or altered fails to
// open and closes that connection, and only that one. Records longer than
// [Config.MaxFrame] plus the header and tag are refused before they are read.
//
// # Security notes
//
// Every connection uses fresh ephemeral keys (forward secrecy). A peer that
// talks to a member can still mount an offline guessing attack on a weak
// secret; PBKDF2 slows it, a long random secret prevents it. Connections are
// not rekeyed: a connection is closed after 2^32 records and redialled.
package channel
