package apps

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/keyway-dev/keyway/internal/redact"
	"github.com/keyway-dev/keyway/sync/api/argocd/v1alpha1"
)

// LabelSecretType and ClusterSecretType mark Argo CD cluster Secrets.
const (
	LabelSecretType   = "argocd.argoproj.io/secret-type"
	ClusterSecretType = "cluster"
)

// clusterView is a destination cluster's view of the daemon, rebuilt when its Secret
// changes.
type clusterView struct {
	d       *Daemon
	name    string
	version string // the Secret's resourceVersion
}

// clusterConfig is the `config` of an Argo CD cluster Secret.
type clusterConfig struct {
	Username        string `json:"username,omitempty"`
	Password        string `json:"password,omitempty"`
	BearerToken     string `json:"bearerToken,omitempty"`
	TLSClientConfig struct {
		Insecure   bool   `json:"insecure,omitempty"`
		ServerName string `json:"serverName,omitempty"`
		CAData     []byte `json:"caData,omitempty"`
		CertData   []byte `json:"certData,omitempty"`
		KeyData    []byte `json:"keyData,omitempty"`
	} `json:"tlsClientConfig"`
}

func inCluster(dest v1alpha1.ApplicationDestination) bool {
	return (dest.Server == "" || dest.Server == v1alpha1.InCluster) && (dest.Name == "" || dest.Name == v1alpha1.InClusterName)
}

// target returns the view of the daemon that deploys to dest: the hub itself for
// https://kubernetes.default.svc (or name in-cluster), else the cluster an Argo CD cluster
// Secret in the state namespace describes (by server, or by name).
func (d *Daemon) target(ctx context.Context, dest v1alpha1.ApplicationDestination) (*Daemon, error) {
	if inCluster(dest) {
		return d.hub, nil
	}
	list, err := d.hub.kube.CoreV1().Secrets(d.o.StateNamespace).List(ctx, metav1.ListOptions{LabelSelector: LabelSecretType + "=" + ClusterSecretType})
	if err != nil {
		return nil, fmt.Errorf("reading cluster Secrets in %s: %s", d.o.StateNamespace, redact.APIError(err))
	}
	want := strings.TrimSuffix(dest.Server, "/")
	for _, s := range list.Items {
		server := strings.TrimSuffix(string(s.Data["server"]), "/")
		name := string(s.Data["name"])
		if (dest.Server != "" && server == want) || (dest.Server == "" && dest.Name != "" && name == dest.Name) {
			return d.view(server, name, s.ResourceVersion, s.Data["config"])
		}
	}
	what := "server " + dest.Server
	if dest.Server == "" {
		what = "name " + dest.Name
	}
	return nil, fmt.Errorf("destination %s: no cluster Secret (%s: %s) in %s names it", what, LabelSecretType, ClusterSecretType, d.o.StateNamespace)
}

// byServer returns the view for a server recorded in an inventory.
func (d *Daemon) byServer(ctx context.Context, server string) (*Daemon, error) {
	if server == "" {
		return d.hub, nil
	}
	return d.target(ctx, v1alpha1.ApplicationDestination{Server: server})
}

// view builds (or reuses) the clients for a cluster Secret.
func (d *Daemon) view(server, name, version string, raw []byte) (*Daemon, error) {
	d.mu.Lock()
	if v, ok := d.clusters[server]; ok && v.version == version {
		d.mu.Unlock()
		return v.d, nil
	}
	d.mu.Unlock()
	var cc clusterConfig
	if err := json.Unmarshal(raw, &cc); err != nil {
		return nil, fmt.Errorf("cluster Secret for %s: config is not the JSON Argo CD writes (bearerToken, tlsClientConfig): %v", server, err)
	}
	cfg := &rest.Config{Host: server, Username: cc.Username, Password: cc.Password, BearerToken: cc.BearerToken,
		TLSClientConfig: rest.TLSClientConfig{Insecure: cc.TLSClientConfig.Insecure, ServerName: cc.TLSClientConfig.ServerName,
			CAData: cc.TLSClientConfig.CAData, CertData: cc.TLSClientConfig.CertData, KeyData: cc.TLSClientConfig.KeyData},
		QPS: d.o.Config.QPS, Burst: d.o.Config.Burst, UserAgent: d.o.Config.UserAgent, Timeout: d.o.Config.Timeout}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %v", server, err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %v", server, err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %v", server, err)
	}
	v := d.state.newView(server, kube, dyn, dc)
	d.mu.Lock()
	d.clusters[server] = &clusterView{d: v, name: name, version: version}
	d.mu.Unlock()
	return v, nil
}
