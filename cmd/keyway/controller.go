package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/keyway-dev/keyway/internal/kube"
	"github.com/keyway-dev/keyway/internal/redact"
	"github.com/keyway-dev/keyway/sealing"
	"github.com/keyway-dev/keyway/sync/externalsecrets"
	"github.com/keyway-dev/keyway/sync/sealedsecrets"
)

// kubeFlags select the cluster.
type kubeFlags struct {
	Kubeconfig, Context, Namespace string
}

func (k *kubeFlags) BindFlags(fs *pflag.FlagSet) {
	fs.StringVar(&k.Kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster, then $KUBECONFIG, then ~/.kube/config)")
	fs.StringVar(&k.Context, "context", "", "kubeconfig context")
	fs.StringVarP(&k.Namespace, "namespace", "n", "kube-system", "namespace of the sealing key ring (upstream's default)")
}

func (k *kubeFlags) config() (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if k.Kubeconfig != "" {
		rules.ExplicitPath = k.Kubeconfig
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: k.Context}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubernetes client configuration: %w", err)
	}
	return cfg, nil
}

func newControllerCommand(a *app) *cobra.Command {
	var o controllerOptions
	cmd := &cobra.Command{
		Use:   "controller",
		Short: "Run the in-cluster unsealer: SealedSecrets become Secrets",
		Long: `controller watches bitnami.com/v1alpha1 SealedSecrets (install examples/sealedsecret/crd.yaml)
and creates the Secret each describes, owned by it. It keeps the sealing key ring in
--namespace (generating the first key, and a new one every --key-renew-period), and serves:

  /healthz  /v1/cert.pem  /v1/verify  /v1/rotate  /metrics

A Secret is written only when it differs from what its SealedSecret says (a hand edit is
undone at once, from the watch); every --resync-period each SealedSecret is checked again
against the caches, which writes nothing when nothing changed. Events and the Synced
condition change only on real transitions. The caches keep a small entry per object and
never a Secret's values (about 2 KB per SealedSecret and its Secret once settled); each
Secret carries a proof (keyway.dev/unsealed-from) that lets a restarted controller check it
without decrypting.

With several replicas, one leader (a Lease in --namespace) reconciles; all serve HTTP. The
Lease is renewed on a client of its own, so renewal never waits behind reconciles; a leader
that cannot renew (API server unreachable past the renew deadline) exits with an error, to be
restarted, and a standby takes over within the lease duration. New and changed objects are
served before periodic checks, and the API server sees at most --kube-qps requests a second.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runController(cmd, a, &o) },
	}
	o.BindFlags(cmd.Flags())
	return cmd
}

// controllerOptions are keyway controller's flags.
type controllerOptions struct {
	kf                                  kubeFlags
	listen, metricsListen, leaseName    string
	renew, resync                       time.Duration
	lease                               kube.LeaseOptions
	bits, workers, burst                int
	qps                                 float32
	leaderElect, runSyncer, runUnsealer bool
	controllerClass                     string
	so                                  externalsecrets.SyncerOptions
}

// BindFlags binds the controller's flags to o.
func (o *controllerOptions) BindFlags(fs *pflag.FlagSet) {
	o.kf.BindFlags(fs)
	fs.StringVar(&o.listen, "listen", ":8080", "HTTP address for the API (cert.pem, verify, rotate), health and, without --metrics-listen, metrics")
	fs.StringVar(&o.metricsListen, "metrics-listen", "", "HTTP address for /metrics alone (then --listen serves no metrics): keep monitoring apart from the sealing API")
	fs.DurationVar(&o.renew, "key-renew-period", 30*24*time.Hour, "generate a new sealing key when the newest is this old (0 disables)")
	fs.IntVar(&o.bits, "key-bits", sealing.KeyBits, "RSA key size for new keys")
	fs.IntVar(&o.workers, "workers", 2*runtime.GOMAXPROCS(0), "SealedSecrets reconciled at once (decryption is bound by the cores; twice as many overlap it with API calls)")
	fs.Float32Var(&o.qps, "kube-qps", kube.DefaultQPS, "requests per second to the API server (client-side limit; client-go's default is 5)")
	fs.IntVar(&o.burst, "kube-burst", kube.DefaultBurst, "requests allowed in a burst above --kube-qps")
	fs.DurationVar(&o.resync, "resync-period", 10*time.Minute, "how often every SealedSecret is checked again (reads only unless something changed)")
	fs.BoolVar(&o.leaderElect, "leader-elect", true, "elect one leader among replicas (Lease in --namespace)")
	fs.StringVar(&o.leaseName, "leader-election-id", "keyway-unsealer", "name of the leader-election Lease")
	fs.BoolVar(&o.runUnsealer, "unsealer", true, "run the SealedSecret unsealer (and its HTTP API)")
	fs.BoolVar(&o.runSyncer, "syncer", true, "run the ExternalSecret syncer (it waits for the API server and for the external-secrets.io CRDs, looking again every 30s, and starts once they are served)")
	fs.StringVar(&o.controllerClass, "controller-class", "", "handle only stores whose spec.controller is this (External Secrets' controller class), to run beside ESO")
	fs.StringArrayVar(&o.so.VaultServers, "allow-vault-server", nil, "a Vault address (URL prefix) namespaced SecretStores may name (repeatable); by default only ClusterSecretStores name Vault servers")
	fs.BoolVar(&o.so.AmbientCredentials, "allow-ambient-credentials", false, "let namespaced SecretStores without credentials use the controller's own AWS or GCP identity (ClusterSecretStores always may)")
	fs.Float64Var(&o.so.StoreQPS, "store-qps", externalsecrets.DefaultStoreQPS, "backend reads per second per store (a store's keyway.dev/qps annotation overrides it)")
	fs.IntVar(&o.so.StoreBurst, "store-burst", externalsecrets.DefaultStoreBurst, "backend reads allowed in a burst per store (keyway.dev/burst overrides it)")
	fs.StringVar(&o.so.AWSEndpoint, "aws-endpoint", "", "AWS endpoint for every store (a VPC endpoint); stores cannot set one")
	fs.StringVar(&o.so.GCPEndpoint, "gcp-endpoint", "", "GCP Secret Manager endpoint (host:port) for every store; stores cannot set one")
	fs.StringVar(&o.so.GCPCAFile, "gcp-ca-file", "", "TLS roots for --gcp-endpoint and --gcp-token-url")
	fs.StringVar(&o.so.GCPTokenURL, "gcp-token-url", "", "where service-account keys are exchanged for tokens (default Google's); a key naming another address is refused")
	fs.DurationVar(&o.lease.LeaseDuration, "leader-election-lease-duration", 15*time.Second, "how long a leader's Lease holds without renewal: the longest a crashed leader's work waits")
	fs.DurationVar(&o.lease.RenewDeadline, "leader-election-renew-deadline", 10*time.Second, "how long the leader keeps trying to renew before it gives up and exits")
	fs.DurationVar(&o.lease.RetryPeriod, "leader-election-retry-period", 2*time.Second, "how often candidates try to take the Lease")
}

// runController starts the unsealer (with its HTTP API) and the syncer, under leader
// election unless --leader-elect=false.
func runController(cmd *cobra.Command, a *app, o *controllerOptions) error {
	if o.resync <= 0 {
		return usagef("--resync-period must be positive, got %s", o.resync)
	}
	if o.qps <= 0 || o.burst < 1 || o.workers < 1 {
		return usagef("--kube-qps, --kube-burst and --workers must be positive")
	}
	if o.lease.RetryPeriod <= 0 || o.lease.RenewDeadline <= o.lease.RetryPeriod || o.lease.LeaseDuration <= o.lease.RenewDeadline {
		return usagef("want 0 < --leader-election-retry-period < --leader-election-renew-deadline < --leader-election-lease-duration")
	}
	base, err := o.kf.config()
	if err != nil {
		return err
	}
	cfg := kube.WithLimits(base, o.qps, o.burst, "keyway-unsealer")
	if !o.runSyncer && !o.runUnsealer {
		return usagef("--syncer=false and --unsealer=false leave nothing to run")
	}
	ctx := cmd.Context()
	// One registry: the unsealer's /metrics serves the syncer's figures too.
	reg := prometheus.NewRegistry()
	var runs []func(context.Context) error
	if o.runUnsealer {
		client, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return err
		}
		dyn, err := dynamic.NewForConfig(cfg)
		if err != nil {
			return err
		}
		u := sealedsecrets.New(client, dyn, sealedsecrets.Options{Namespace: o.kf.Namespace, KeyRenewPeriod: o.renew, KeyBits: o.bits, Workers: o.workers, ResyncPeriod: o.resync, Logger: a.log, Registry: reg})
		if err := u.Start(ctx); err != nil {
			return err
		}
		l, err := net.Listen("tcp", o.listen)
		if err != nil {
			return fmt.Errorf("--listen %s: %w", o.listen, err)
		}
		handler := u.Handler()
		if o.metricsListen != "" {
			// Metrics apart: --listen then serves the API alone, to the users who seal.
			ml, err := net.Listen("tcp", o.metricsListen)
			if err != nil {
				return fmt.Errorf("--metrics-listen %s: %w", o.metricsListen, err)
			}
			msrv := &http.Server{Handler: u.MetricsHandler(), ReadHeaderTimeout: 10 * time.Second}
			go func() { _ = msrv.Serve(ml) }()
			defer msrv.Close()
			handler = u.APIHandler()
		}
		srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(l) }()
		defer srv.Close()
		a.log.Info("unsealer serving", "address", l.Addr().String(), "namespace", o.kf.Namespace)
		runs = append(runs, u.Run)
	}
	if o.runSyncer {
		o.so.ControllerClass, o.so.Logger, o.so.Registry = o.controllerClass, a.log, reg
		if o.so.StoreQPS <= 0 || o.so.StoreBurst < 1 {
			return usagef("--store-qps and --store-burst must be positive")
		}
		runs = append(runs, func(ctx context.Context) error { return runSyncer(ctx, base, o.qps, o.burst, o.so, a) })
		if !o.runUnsealer {
			// Syncer only: /healthz and /metrics on --listen all the same.
			l, err := net.Listen("tcp", o.listen)
			if err != nil {
				return fmt.Errorf("--listen %s: %w", o.listen, err)
			}
			mux := http.NewServeMux()
			mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
			mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
			srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
			go func() { _ = srv.Serve(l) }()
			defer srv.Close()
			a.log.Info("syncer serving /healthz and /metrics", "address", l.Addr().String())
		}
	}
	work := func(ctx context.Context) {
		var wg sync.WaitGroup
		for _, run := range runs {
			wg.Go(func() {
				if err := run(ctx); err != nil {
					a.log.Error("controller stopped", "error", err)
				}
			})
		}
		wg.Wait()
	}
	if !o.leaderElect {
		work(ctx)
		return nil
	}
	// The lease has a client of its own: renewal never waits behind reconciles.
	o.lease.Namespace, o.lease.Name, o.lease.Logger = o.kf.Namespace, o.leaseName, a.log
	return kube.Lead(ctx, base, o.lease, work)
}

// runSyncer runs the ExternalSecret syncer once the cluster serves external-secrets.io/v1,
// until ctx ends. It does not give up: an API server that cannot be reached is asked again
// with back-off (1 s doubling to 30 s), and CRDs not installed yet are looked for every 30 s
// — a controller started during an outage, or before the CRDs, starts syncing once they are
// there instead of staying off.
func runSyncer(ctx context.Context, base *rest.Config, qps float32, burst int, o externalsecrets.SyncerOptions, a *app) error {
	cfg := kube.WithLimits(base, qps, burst, "keyway-syncer")
	disc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	wait, said := time.Second, ""
	for {
		_, err := disc.Discovery().ServerResourcesForGroupVersion("external-secrets.io/v1")
		if err == nil {
			break
		}
		next, msg := wait, "the ExternalSecret syncer waits: the API server cannot be reached; trying again"
		if apierrors.IsNotFound(err) {
			next, msg = 30*time.Second, "the ExternalSecret syncer waits: the cluster does not serve external-secrets.io/v1 (install the CRDs with: keyway crds | kubectl apply --server-side -f -); looking again every 30s"
		} else {
			wait = min(2*wait, 30*time.Second)
		}
		if msg != said {
			a.log.Info(msg, "error", redact.APIError(err))
			said = msg
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(next):
		}
	}
	s, err := externalsecrets.NewSyncer(cfg, o)
	if err != nil {
		return err
	}
	a.log.Info("the ExternalSecret syncer is running")
	return s.Run(ctx)
}
