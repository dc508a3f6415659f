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
func Run(m *testing.M, env **Env) {
	os.Exit(run(m, env))
}

func run(m *testing.M, env **Env) int {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	e, err := Start(ctx, Options{})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if err := e.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}()
	fmt.Fprintf(os.Stderr, "testenv: etcd + kube-apiserver ready in %s\n", e.StartupTime.Round(time.Millisecond))
	*env = e
	return m.Run()
}
