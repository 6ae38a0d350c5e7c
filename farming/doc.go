// Package farming deploys a bundle dropped into one member's watch directory on every member of the
// cluster, members that were down at the time included (what Tomcat's FarmWarDeployer does for the
// members that happen to be up).
//
// # Pieces
//
//   - The watch directory (optional per member) is read with package dirwatch: a bundle is taken only
//     once its size and mtime have settled and it opens as a valid bundle (bundle.Open: manifest, safe
//     paths, sizes). The member that sees it is its origin: it copies the bundle into its store,
//     deploys it locally first (a canary: a bundle that does not deploy there is never farmed), then
//     records it in the ledger and tells every live member. Removing the file records a tombstone;
//     replacing it records a new entry; dropping the same bytes again changes nothing.
//   - The ledger is the cluster's desired state: one [Entry] per deployment key ("name" or
//     "name##version") with the bundle file name, its sha256, its context, the origin member, a
//     timestamp and a tombstone flag. Every member keeps the whole ledger (persisted in TempDir) and
//     puts a short digest of it in its membership record (Meta.Extra["farm"]). A member that sees a
//     peer's digest differ from its own pulls that peer's ledger over the channel and merges it; a
//     member whose ledger changes locally pushes the change to every live member at once, and a
//     periodic anti-entropy pass repairs anything lost.
//   - Bundles move over the cluster channel as streams ([channel.Channel.OpenStream]): chunked, flow
//     controlled, on a dedicated connection so session replication is never stalled. A member that
//     lacks a bundle asks a member that holds it (the origin first, then the others) to stream it;
//     transfers to several members run in parallel. The receiver writes to a temp file, checks the
//     size and the sha256 of the whole bundle against the ledger, and only then moves it into its
//     store; a cut or corrupt transfer leaves nothing behind and is retried from another holder.
//   - A reconciler compares the ledger with what the local [Deployer] runs: it undeploys tombstoned
//     keys, deploys (fetching first if needed) what is missing or has another sha256, and retries
//     transient failures with backoff. [Manager.Ready] turns true once a member that started has
//     pulled the ledger from a peer (or found none) and applied it.
//
// # Conflict rule
//
// Two entries for the same key are ordered by (Stamp, Origin, SHA256, Deleted), compared in that
// order (strings byte-wise, a tombstone above a live entry); the greater one wins on every member.
// Stamp is a hybrid logical clock: a member stamps a local change with max(the largest stamp it has
// seen + 1, its wall clock in milliseconds), so a later drop normally wins and causally later changes
// always do. Two concurrent drops of the same key therefore resolve to the same bytes everywhere.
//
// Apps of different names cannot share a context path. When live entries of several names claim one
// context, the name whose newest entry is greatest by the order above owns the context on every
// member; the other names' entries stay in the ledger but are not deployed (Stats lists them as
// conflicts) until the owner's entries are removed.
//
// # Versions
//
// Entries of one name with different versions ("shop##1", "shop##2") run side by side, as parallel
// deployment does for the deploy directory. With Config.UndeployOldVersions, only the newest version
// of a name (by the order above) is desired: older ones are no longer deployed on members that lack
// them, and are undeployed where they run once they hold no sessions.
//
// # Safety
//
// Only members that hold the cluster secret can talk on the channel, so only they can push ledger
// entries or bundles. With signing configured, a bundle must come with a detached ed25519 signature:
// the file "<bundle>.sig" beside it in the watch directory holds the base64 signature of
// [SignedMessage] (the bundle's file name and sha256). The signature travels in the ledger entry and
// every member verifies it against its own configured keys before deploying; an unsigned or badly
// signed bundle is refused with an error naming the problem. A bundle that fails validation or
// deployment never replaces a running deployment.
package farming
