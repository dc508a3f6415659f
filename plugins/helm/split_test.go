package helm

import (
	"fmt"
	"reflect"
	"testing"

	"helm.sh/helm/v3/pkg/releaseutil"
)

func helmSplit(s string) []string {
	m := releaseutil.SplitManifests(s)
	var docs []string
	for i := range len(m) {
		docs = append(docs, m[fmt.Sprintf("manifest-%d", i)])
	}
	return docs
}

var splitSeeds = []string{
	"", "---", "a", "---\na", "a\n---\nb", "a\n---\n---\nb", "a\n\n  \n---  \n\nb\n---",
	"----\na", "a\n--- # c\nb", "a---b\n---c", "\v\n---\n\v", "a \r\n---\r\nb", "a\n \t---\nb",
	"---\n---\n---", "a\n---\u00a0\nb", "\n\n---\nkind: A\n---\n\nkind: B\n\n",
	"a\f\n---\f\fb", "---a\n---b", "x\n-- -\ny",
}

func TestSplitManifestsMatchesHelm(t *testing.T) {
	for _, s := range splitSeeds {
		if got, want := splitManifests(s), helmSplit(s); !reflect.DeepEqual(got, want) {
			t.Errorf("split %q = %q, Helm gives %q", s, got, want)
		}
	}
}

func FuzzSplitManifests(f *testing.F) {
	for _, s := range splitSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := splitManifests(s), helmSplit(s); !reflect.DeepEqual(got, want) {
			t.Fatalf("split %q = %q, Helm gives %q", s, got, want)
		}
	})
}
