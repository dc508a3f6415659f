// Command cmpclient talks to an argocd-cmp-server over its Unix socket the way Argo CD's
// repo-server does, with Argo CD's own client code: it checks the plugin configuration, asks
// whether the plugin matches the application (discover), fetches the parameters
// announcement and generates manifests, sending the repository as the repo-server sends it
// (a gzipped tar stream with the environment in the metadata). It prints one JSON object.
//
//	cmpclient -socket PATH -repo ROOT -app ROOT/APP_PATH [-env K=V ...] [-generate-only]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/argoproj/argo-cd/v3/cmpserver/apiclient"
	"github.com/argoproj/argo-cd/v3/util/cmp"
	"github.com/golang/protobuf/ptypes/empty"
)

type envFlag []string

func (e *envFlag) String() string     { return strings.Join(*e, ",") }
func (e *envFlag) Set(v string) error { *e = append(*e, v); return nil }

type result struct {
	DiscoveryConfigured bool     `json:"discoveryConfigured"`
	Supported           bool     `json:"supported"`
	Parameters          any      `json:"parameters,omitempty"`
	Manifests           []string `json:"manifests"`
	GenerateError       string   `json:"generateError,omitempty"`
}

func main() {
	socket := flag.String("socket", "", "the plugin's socket")
	repo := flag.String("repo", "", "repository root")
	app := flag.String("app", "", "application path (absolute, inside the repository)")
	var env envFlag
	flag.Var(&env, "env", "K=V for the plugin's environment (repeatable)")
	generateOnly := flag.Bool("generate-only", false, "skip discovery and parameters (for benchmarks)")
	flag.Parse()
	if err := run(*socket, *repo, *app, env, *generateOnly); err != nil {
		fmt.Fprintln(os.Stderr, "cmpclient:", err)
		os.Exit(1)
	}
}

func run(socket, repo, app string, env []string, generateOnly bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	closer, client, err := apiclient.NewConfigManagementPluginClientSet(socket).NewConfigManagementPluginClient()
	if err != nil {
		return err
	}
	defer closer.Close()
	var res result
	if generateOnly {
		return generate(ctx, client, repo, app, env, &res)
	}
	check, err := client.CheckPluginConfiguration(ctx, &empty.Empty{})
	if err != nil {
		return fmt.Errorf("check plugin configuration: %w", err)
	}
	res.DiscoveryConfigured = check.IsDiscoveryConfigured

	match, err := client.MatchRepository(ctx)
	if err != nil {
		return err
	}
	if err := cmp.SendRepoStream(ctx, app, repo, match, env, nil); err != nil {
		return fmt.Errorf("match repository: %w", err)
	}
	m, err := match.CloseAndRecv()
	if err != nil {
		return fmt.Errorf("match repository: %w", err)
	}
	res.Supported = m.IsSupported

	params, err := client.GetParametersAnnouncement(ctx)
	if err != nil {
		return err
	}
	if err := cmp.SendRepoStream(ctx, app, repo, params, env, nil); err != nil {
		return fmt.Errorf("parameters announcement: %w", err)
	}
	p, err := params.CloseAndRecv()
	if err != nil {
		return fmt.Errorf("parameters announcement: %w", err)
	}
	res.Parameters = p.ParameterAnnouncements
	return generate(ctx, client, repo, app, env, &res)
}

func generate(ctx context.Context, client apiclient.ConfigManagementPluginServiceClient, repo, app string, env []string, res *result) error {
	gen, err := client.GenerateManifest(ctx)
	if err != nil {
		return err
	}
	if err := cmp.SendRepoStream(ctx, app, repo, gen, env, nil); err != nil {
		return fmt.Errorf("generate manifest: %w", err)
	}
	if out, err := gen.CloseAndRecv(); err != nil {
		res.GenerateError = err.Error()
	} else {
		res.Manifests = out.Manifests
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}
