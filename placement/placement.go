// Package placement decides which members hold a session in the backup manager: its primary and its
// backups, by rendezvous (highest random weight) hashing over the live member names. Every node and the
// router compute the same answer from the same member list, with no coordination, and a member that
// joins or leaves moves only the sessions it wins or held (about 1/N of them).
package placement

import (
	"hash/fnv"
	"sort"
)

// Owners returns up to n member names that hold key, best first: Owners(id, members, 1+backups)[0] is
// the primary, the rest its backups. members need not be sorted; duplicates count once. The result is a
// new slice the caller owns.
func Owners(key string, members []string, n int) []string {
	if n <= 0 || len(members) == 0 {
		return nil
	}
	type scored struct {
		name  string
		score uint64
	}
	seen := make(map[string]bool, len(members))
	all := make([]scored, 0, len(members))
	for _, m := range members {
		if seen[m] {
			continue
		}
		seen[m] = true
		all = append(all, scored{m, Score(key, m)})
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].score != all[j].score {
			return all[i].score > all[j].score
		}
		return all[i].name < all[j].name
	})
	if n > len(all) {
		n = len(all)
	}
	out := make([]string, n)
	for i := range out {
		out[i] = all[i].name
	}
	return out
}

// Score is the weight of member for key: FNV-1a over both, then a 64-bit finalizer so that similar
// names spread well.
func Score(key, member string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(key))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(member))
	x := h.Sum64()
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}
