package main

import (
	"context"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/keyway-dev/keyway/internal/startup"
	"github.com/keyway-dev/keyway/providers/providertest/awsfake"
	"github.com/keyway-dev/keyway/providers/providertest/gcpfake"
)

func TestMain(m *testing.M) {
	// Renders run from this test binary start it as their build worker.
	if len(os.Args) > 1 && os.Args[1] == workerCommand {
		os.Exit(runBuildWorker(os.Stdin, os.Stdout, os.Stderr))
	}
	// This test binary links internal/startup too; main, which turns the collector back on,
	// does not run here.
	startup.Resume(0)
	testscript.Main(m, map[string]func(){
		"keyway": func() {
			if app := os.Getenv("KEYWAY_TEST_PANIC_APP"); app != "" {
				beforeSyncHook = func(key string) {
					if key == app {
						panic("injected by the test")
					}
				}
			}
			resumeGC(os.Args[1:], os.LookupEnv)
			os.Exit(run(context.Background(), os.Args[1:], streams{in: os.Stdin, out: os.Stdout, err: os.Stderr}, os.LookupEnv))
		},
	})
}

// TestScripts runs the CLI scripts in testdata/script; each is a txtar archive of commands
// and files (see testscript). The quickstart example is copied in as $WORK/quickstart.
func TestScripts(t *testing.T) {
	quickstart, err := filepath.Abs("../../examples/quickstart")
	if err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			env.Setenv("QUICKSTART", quickstart)
			// Wire-level AWS and GCP fakes for the scripts, seeded with a few secrets.
			aws := awsfake.New()
			env.Defer(aws.Close)
			aws.Put("prod/db", `{"url":"postgres://db/prod","password":"aws-pw"}`)
			aws.Put("prod/token", "aws-plain-token")
			aws.PutParameter("/prod/param", "ssm-value", true)
			env.Setenv("AWS_FAKE", aws.URL)
			env.Setenv("AWS_FAKE_KEY", awsfake.AccessKeyID)
			env.Setenv("AWS_FAKE_SECRET", awsfake.SecretAccessKey)
			gcp, err := gcpfake.New(env.WorkDir)
			if err != nil {
				return err
			}
			env.Defer(gcp.Close)
			gcp.Add("projects/p/secrets/api", []byte(`{"key":"gcp-key"}`))
			env.Setenv("GCP_FAKE", gcp.Addr)
			env.Setenv("GCP_FAKE_CA", gcp.CAFile)
			env.Setenv("GCP_FAKE_TOKEN", gcpfake.Token)
			return nil
		},
	})
}

// TestResumeGC: short commands collect at GOGC=400, the controller and an explicit GOGC get
// the setting from before start-up, and the collector is never left off.
func TestResumeGC(t *testing.T) {
	defer startup.Resume(0)
	none := func(string) (string, bool) { return "", false }
	gogc := func(k string) (string, bool) { return "50", k == "GOGC" }
	for _, tc := range []struct {
		name   string
		args   []string
		lookup func(string) (string, bool)
		want   int
	}{
		{"render", []string{"render", "."}, none, 400},
		{"no command", nil, none, 400},
		{"controller", []string{"controller"}, none, startup.Before()},
		{"argocd serve", []string{"argocd", "serve"}, none, startup.Before()},
		{"argocd generate", []string{"argocd", "generate"}, none, 400},
		{"GOGC set", []string{"render"}, gogc, startup.Before()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resumeGC(tc.args, tc.lookup)
			got := debug.SetGCPercent(-1)
			debug.SetGCPercent(got)
			if got != tc.want || got < 0 {
				t.Errorf("GC percent = %d, want %d", got, tc.want)
			}
		})
	}
}
