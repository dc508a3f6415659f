package confine

import "testing"

func TestRel(t *testing.T) {
	for _, tc := range []struct {
		root, p, rel string
		ok           bool
	}{
		{"/repo", "/repo", ".", true},
		{"/repo", "/repo/apps/a.yaml", "apps/a.yaml", true},
		{"/repo/", "/repo/apps/../b", "b", true},
		{"/repo", "/repo/../outside", "", false},
		{"/repo", "/repository", "", false},
		{"/repo", "/", "", false},
		{"/repo", "/repo/..x", "..x", true},
	} {
		rel, ok := Rel(tc.root, tc.p)
		if rel != tc.rel || ok != tc.ok {
			t.Errorf("Rel(%q, %q) = %q, %v; want %q, %v", tc.root, tc.p, rel, ok, tc.rel, tc.ok)
		}
	}
}
