package placement

import (
	"fmt"
	"slices"
	"testing"
)

func TestOwnersDeterministicAndOrderFree(t *testing.T) {
	a := Owners("s1", []string{"n1", "n2", "n3", "n4"}, 2)
	b := Owners("s1", []string{"n4", "n3", "n2", "n1", "n2"}, 2)
	if !slices.Equal(a, b) || len(a) != 2 || a[0] == a[1] {
		t.Fatalf("owners differ with member order: %v vs %v", a, b)
	}
	if got := Owners("s1", []string{"n1"}, 3); !slices.Equal(got, []string{"n1"}) {
		t.Fatalf("n larger than members: %v", got)
	}
	if Owners("s1", nil, 1) != nil || Owners("s1", []string{"a"}, 0) != nil {
		t.Fatal("empty input must give nil")
	}
}

func TestBalancedAndMinimalMovement(t *testing.T) {
	members := []string{"node1", "node2", "node3", "node4"}
	counts := map[string]int{}
	moved := 0
	const keys = 20000
	for i := 0; i < keys; i++ {
		k := fmt.Sprintf("session-%d", i)
		p := Owners(k, members, 1)[0]
		counts[p]++
		// Removing node4 must move only the keys node4 held.
		q := Owners(k, members[:3], 1)[0]
		if p != q {
			moved++
			if p != "node4" {
				t.Fatalf("key %s moved from %s to %s though %s stayed", k, p, q, p)
			}
		}
	}
	for m, c := range counts {
		if c < keys/4*85/100 || c > keys/4*115/100 {
			t.Fatalf("unbalanced: %s holds %d of %d (%v)", m, c, keys, counts)
		}
	}
	if moved != counts["node4"] {
		t.Fatalf("moved %d, node4 held %d", moved, counts["node4"])
	}
}
