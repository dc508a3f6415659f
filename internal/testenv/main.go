package testenv

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"
)

// Run starts one Env for a whole test binary, runs its tests and stops the Env before the
// binary exits. Use it from TestMain:
//
//	var env *testenv.Env
//
//	func TestMain(m *testing.M) { testenv.Run(m, &env) }
//
// Each setup runs after the API server is ready (to start Vault beside it, say); a failing
// setup stops everything and fails the binary.
func Run(m *testing.M, env **Env, setups ...func(context.Context, *Env) error) {
	os.Exit(run(m, env, setups))
}

func run(m *testing.M, env **Env, setups []func(context.Context, *Env) error) int {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	e, err := Start(ctx, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if err := e.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}()
	for _, setup := range setups {
		if err := setup(ctx, e); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	fmt.Fprintf(os.Stderr, "testenv: etcd + kube-apiserver ready in %s\n", e.StartupTime.Round(time.Millisecond))
	*env = e
	return m.Run()
}
