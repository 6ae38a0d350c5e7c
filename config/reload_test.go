package config

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// mutateLeaf changes the leaf v (addressable) to a different value.
func mutateLeaf(t *testing.T, v reflect.Value) {
	t.Helper()
	if v.Kind() == reflect.Slice {
		elem := reflect.New(v.Type().Elem()).Elem()
		switch e := elem.Addr().Interface().(type) {
		case *string:
			*e = "new:1"
		case *CIDR:
			*e = CIDR{netip.MustParsePrefix("192.0.2.0/24")}
		default:
			t.Fatalf("no mutation for list of %s", v.Type().Elem())
		}
		v.Set(reflect.Append(v, elem))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(v.String() + "x")
	case reflect.Int, reflect.Int64:
		v.SetInt(v.Int() + 1)
	case reflect.Bool:
		v.SetBool(!v.Bool())
	default:
		t.Fatalf("no mutation for %s", v.Type())
	}
}

// TestReloadTagsMatchReloadable changes every key in turn: a key tagged
// reload must change Reloadable() and pass CheckReload; any other key must
// leave Reloadable() alone and fail CheckReload naming that key.
func TestReloadTagsMatchReloadable(t *testing.T) {
	base := clustered()
	var paths []string
	walkLeaves(reflect.ValueOf(base), reflect.Value{}, "", func(p string, _ field, _, _ reflect.Value) {
		paths = append(paths, p)
	})
	reloadables := 0
	for i, path := range paths {
		next := base.Clone()
		j := 0
		walkLeaves(reflect.ValueOf(&next).Elem(), reflect.Value{}, "", func(p string, f field, v, _ reflect.Value) {
			if j == i {
				mutateLeaf(t, v)
			}
			j++
		})
		if d := Diff(base, next); len(d) != 1 || d[0] != path {
			t.Fatalf("%s: Diff = %v", path, d)
		}
		err := CheckReload(base, next)
		changed := !reflect.DeepEqual(base.Reloadable(), next.Reloadable())
		if changed {
			reloadables++
			if err != nil {
				t.Errorf("%s is in Reloadable but CheckReload says %v", path, err)
			}
			continue
		}
		if !errors.Is(err, ErrNotReloadable) || !strings.HasPrefix(err.Error(), path+": ") {
			t.Errorf("%s is not in Reloadable but CheckReload says %v", path, err)
		}
	}
	if reloadables != 22 {
		t.Errorf("%d reloadable keys, want 22 (update this test with the Reloadable type)", reloadables)
	}
}

func TestCheckReloadNamesEveryKey(t *testing.T) {
	a := clustered()
	b := a.Clone()
	b.Node.HTTP = "127.0.0.1:9999"
	b.Cluster.Secret = "another-secret-0123"
	b.Cluster.Replication.Mode = ModeAsync
	b.Router.Policy = PolicyLeastConnections
	err := CheckReload(a, b)
	fes := FieldErrors(err)
	if len(fes) != 2 || fes[0].Field != "node.http" || fes[1].Field != "cluster.secret" {
		t.Fatalf("CheckReload = %v", err)
	}
	if !strings.Contains(err.Error(), "node.http: cannot change at runtime (restart required)") {
		t.Errorf("message: %v", err)
	}
	if got := Diff(a, b); len(got) != 4 {
		t.Errorf("Diff = %v, want 4 keys", got)
	}
	if err := CheckReload(a, a.Clone()); err != nil {
		t.Errorf("no change: %v", err)
	}
}

func TestDiffNilEqualsEmpty(t *testing.T) {
	a, b := Default(), Default()
	a.Router.Backends, b.Router.Backends = nil, []string{}
	if d := Diff(a, b); d != nil {
		t.Errorf("Diff = %v", d)
	}
}

func TestReloadableSharesNothing(t *testing.T) {
	c := Default()
	c.Router.Backends = []string{"a:1"}
	r := c.Reloadable()
	r.Backends[0] = "b:2"
	r.TrustedProxies[0] = CIDR{}
	if c.Router.Backends[0] != "a:1" || !c.Node.TrustedProxies[0].IsValid() {
		t.Error("Reloadable aliases the config's slices")
	}
}
