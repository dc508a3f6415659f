package sealing

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"k8s.io/client-go/kubernetes"
)

// Client reaches an unsealer's HTTP API (keyway controller or upstream's
// sealed-secrets-controller) through the API server's service proxy, as kubeseal does, so
// no port needs to be exposed.
type Client struct {
	Kube      kubernetes.Interface
	Namespace string // of the Service
	Name      string // the Service
}

// Cert returns the PEM certificate of the controller's newest key.
func (c Client) Cert(ctx context.Context) ([]byte, error) {
	out, err := c.Kube.CoreV1().Services(c.Namespace).ProxyGet("http", c.Name, "", "/v1/cert.pem", nil).DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("controller %s/%s /v1/cert.pem: %w", c.Namespace, c.Name, err)
	}
	return out, nil
}

// Verify reports whether the controller can open ss; ErrDecrypt when it cannot.
func (c Client) Verify(ctx context.Context, ss *SealedSecret) error {
	_, err := c.post(ctx, "/v1/verify", ss)
	return err
}

// Rotate has the controller re-encrypt ss with its newest key.
func (c Client) Rotate(ctx context.Context, ss *SealedSecret) (*SealedSecret, error) {
	out, err := c.post(ctx, "/v1/rotate", ss)
	if err != nil {
		return nil, err
	}
	var re SealedSecret
	if err := json.Unmarshal(out, &re); err != nil || re.Kind != Kind {
		return nil, fmt.Errorf("controller %s/%s /v1/rotate: the answer is not a SealedSecret", c.Namespace, c.Name)
	}
	return &re, nil
}

func (c Client) post(ctx context.Context, path string, ss *SealedSecret) ([]byte, error) {
	body, err := json.Marshal(ss)
	if err != nil {
		return nil, err
	}
	var code int
	out, err := c.Kube.CoreV1().RESTClient().Post().Namespace(c.Namespace).Resource("services").Name("http:" + c.Name + ":").
		SubResource("proxy").Suffix(path).Body(body).Do(ctx).StatusCode(&code).Raw()
	switch {
	case err == nil:
		return out, nil
	case code == http.StatusConflict:
		return nil, fmt.Errorf("the controller cannot open it: %w", ErrDecrypt)
	}
	return nil, fmt.Errorf("controller %s/%s %s: %w", c.Namespace, c.Name, path, err)
}
