package main

import (
	"bytes"
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	c := sealing.Client{Kube: kc, Namespace: o.ControllerNS, Name: o.ControllerName}
	if !o.controllerGiven {
		c = findController(context.Background(), c)
	}
	return c, nil
}

// chartController selects the Service keyway's chart makes for its controller.
const chartController = "app.kubernetes.io/name=keyway,app.kubernetes.io/component=controller"

// findController keeps kubeseal's default Service when it exists; when it does not, and
// exactly one Service of keyway's chart's controller does, that one is used (keyway's chart
// installs keyway-system/keyway-controller, not kube-system/sealed-secrets-controller).
// Anything else leaves the default, whose error then names the flags to set.
func findController(ctx context.Context, c sealing.Client) sealing.Client {
	if _, err := c.Kube.CoreV1().Services(c.Namespace).Get(ctx, c.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		return c
	}
	list, err := c.Kube.CoreV1().Services("").List(ctx, metav1.ListOptions{LabelSelector: chartController})
	if err != nil || len(list.Items) != 1 {
		return c
	}
	c.Namespace, c.Name = list.Items[0].Namespace, list.Items[0].Name
	return c
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
