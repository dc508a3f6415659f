package reference_test

import (
	"fmt"

	"github.com/keyway-dev/keyway/internal/reference"
)

// A field may mix text with placeholders in both grammars; each placeholder names a
// secret, a key in it and a pipeline of modifiers. Paths must be canonical.
func ExampleParse() {
	t, err := reference.Parse("postgres://app:<path:secret/data/db#password | base64encode>@db/ref+vault://secret/app#/name", reference.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, part := range t.Parts {
		if p := part.Placeholder; p != nil {
			fmt.Printf("placeholder backend=%q path=%q key=%q pointer=%q modifiers=%d\n", p.Backend, p.Path, p.Key, p.Pointer, len(p.Modifiers))
		} else {
			fmt.Printf("text %q\n", part.Literal)
		}
	}
	_, err = reference.Parse("<path:secret/data/team-a/../team-b#pw>", reference.Options{})
	fmt.Println(err)
	// Output:
	// text "postgres://app:"
	// placeholder backend="" path="secret/data/db" key="password" pointer="" modifiers=1
	// text "@db/"
	// placeholder backend="vault" path="secret/app" key="" pointer="/name" modifiers=0
	// malformed reference "<path:secret/data/team-a/../team-b#pw>": secret path: ".." segment
}
