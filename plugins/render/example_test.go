package render_test

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/keyway-dev/keyway/internal/manifest"
	"github.com/keyway-dev/keyway/plugins/render"
	"github.com/keyway-dev/keyway/providers"
)

// vaultStub is a one-secret backend for the example.
type vaultStub struct{}

func (vaultStub) Fetch(_ context.Context, ref providers.Ref) (providers.Secret, error) {
	if ref.Path != "secret/data/shop/db" {
		return providers.Secret{}, fmt.Errorf("%w: %s", providers.ErrNotFound, ref)
	}
	return providers.Secret{Data: map[string]any{"password": "s3cret", "port": 5432}}, nil
}

// The engine substitutes every reference in place, each distinct secret fetched once; a
// lone placeholder takes the value's type, and a Secret's stringData stays text.
func ExampleEngine_Render() {
	docs, err := manifest.Read(strings.NewReader(`apiVersion: v1
kind: Secret
metadata:
  name: db
stringData:
  password: <path:secret/data/shop/db#password>
  port: <path:secret/data/shop/db#port>
---
apiVersion: example.com/v1
kind: Database
metadata:
  name: shop
spec:
  port: <path:secret/data/shop/db#port>
`), "app.yaml", manifest.Limits{})
	if err != nil {
		fmt.Println(err)
		return
	}
	stats, err := render.New(vaultStub{}, render.Options{DefaultBackend: "vault"}).Render(context.Background(), docs)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%d references, %d fetch\n", stats.References, stats.Fetches)
	_ = manifest.Encode(os.Stdout, docs, manifest.YAML)
	// Output:
	// 3 references, 1 fetch
	// apiVersion: v1
	// kind: Secret
	// metadata:
	//   name: db
	// stringData:
	//   password: s3cret
	//   port: "5432"
	// ---
	// apiVersion: example.com/v1
	// kind: Database
	// metadata:
	//   name: shop
	// spec:
	//   port: 5432
}
