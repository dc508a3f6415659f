package main

import (
	"bytes"
	"context"
	"fmt"

	"k8s.io/client-go/kubernetes"

	"github.com/keyway-dev/keyway/internal/manifest"
	"github.com/keyway-dev/keyway/sealing"
)

func (o *sealOptions) controller() (sealing.Client, error) {
	cfg, err := o.Kube.config()
	if err != nil {
		return sealing.Client{}, err
	}
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return sealing.Client{}, err
	}
	return sealing.Client{Kube: kc, Namespace: o.ControllerNS, Name: o.ControllerName}, nil
}

// online validates or re-encrypts through the controller, without private keys.
func (o *sealOptions) online(ctx context.Context, a *app) error {
	in, source, err := o.input(a)
	if err != nil {
		return err
	}
	docs, err := manifest.Read(bytes.NewReader(in), source, manifest.Limits{})
	if err != nil {
		return err
	}
	c, err := o.controller()
	if err != nil {
		return err
	}
	var out []any
	for _, d := range docs {
		var ss sealing.SealedSecret
		if err := manifest.Decode(d, &ss); err != nil {
			return err
		}
		if o.Validate {
			err = c.Verify(ctx, &ss)
		} else {
			var re *sealing.SealedSecret
			re, err = c.Rotate(ctx, &ss)
			out = append(out, re)
		}
		if err != nil {
			return fmt.Errorf("%s: document %d: %w", d.Source, d.Index, err)
		}
	}
	if o.Validate {
		fmt.Fprintf(a.err, "keyway: %d SealedSecret(s) valid\n", len(docs))
		return nil
	}
	data, err := sealing.Encode(out, o.Output)
	if err != nil {
		return err
	}
	return o.emit(a, data)
}
