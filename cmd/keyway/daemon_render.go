package main

import (
	"context"
	"crypto/rsa"
	"strings"

	"github.com/keyway-dev/keyway/internal/manifest"
	"github.com/keyway-dev/keyway/plugins/argocd"
	"github.com/keyway-dev/keyway/plugins/render"
	"github.com/keyway-dev/keyway/providers"
	"github.com/keyway-dev/keyway/sync/apps"
	"github.com/spf13/cobra"
)

// daemonRenderer renders an application as `keyway argocd generate` would: the same
// engine, backends, isolated builds and closed policy (plugin env entries that steer
// keyway need --argocd-allow-env; --argocd-project-path applies to spec.project). It
// records each secret the render read (version and hash), so a poll can tell whether any
// changed; inputs opens the same backends for that check.
func daemonRenderer(cmd *cobra.Command, a *app, o *renderOptions, pol argocd.Policy, pool *providers.Pool, sealTo *rsa.PublicKey) (apps.Renderer, apps.InputReader) {
	clientsFor := func(req apps.RenderRequest) (*providers.Clients, error) {
		overlay, err := pol.Overlay(argocd.Env{AppEnv: req.Env}, a.env)
		if err != nil {
			return nil, err
		}
		settings, err := backendSettings(cmd.Flags(), &o.Vault, &o.Cloud, o.sections, overlay)
		if err != nil {
			return nil, err
		}
		served := *a
		served.pool = pool
		return served.clients(settings), nil
	}
	render := func(ctx context.Context, req apps.RenderRequest) ([]*manifest.Document, []apps.Input, error) {
		ctx, cancel := context.WithTimeout(ctx, o.Timeout)
		defer cancel()
		clients, err := clientsFor(req)
		if err != nil {
			return nil, nil, err
		}
		defer clients.Close()
		rec := &apps.Recorder{Clients: clients}
		load := render.LoadOptions{Source: req.Source, Helm: req.Helm, Root: req.Root}
		docs, _, err := o.pipeline(ctx, a, rec, pol.RefCheck(req.App.Spec.Project), req.Paths, strings.NewReader(""), load, sealTo, req.App.Spec.Destination.Namespace)
		if err != nil {
			return nil, nil, err
		}
		return docs, rec.Inputs(), nil
	}
	inputs := func(ctx context.Context, req apps.RenderRequest, use func(context.Context, apps.SecretReader) error) error {
		ctx, cancel := context.WithTimeout(ctx, o.Timeout)
		defer cancel()
		clients, err := clientsFor(req)
		if err != nil {
			return err
		}
		defer clients.Close()
		return use(ctx, clients)
	}
	return render, inputs
}
