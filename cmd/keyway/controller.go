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
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/keyway-dev/keyway/internal/kube"
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
	var kf kubeFlags
	var listen, metricsListen, leaseName string
	var renew, resync time.Duration
	var lease kube.LeaseOptions
	var bits, workers, burst int
	var qps float32
	var leaderElect, runSyncer, runUnsealer bool
	var controllerClass string
	var so externalsecrets.SyncerOptions
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
		RunE: func(cmd *cobra.Command, _ []string) error {
			if resync <= 0 {
				return usagef("--resync-period must be positive, got %s", resync)
			}
			if qps <= 0 || burst < 1 || workers < 1 {
				return usagef("--kube-qps, --kube-burst and --workers must be positive")
			}
			if lease.RetryPeriod <= 0 || lease.RenewDeadline <= lease.RetryPeriod || lease.LeaseDuration <= lease.RenewDeadline {
				return usagef("want 0 < --leader-election-retry-period < --leader-election-renew-deadline < --leader-election-lease-duration")
			}
			base, err := kf.config()
			if err != nil {
				return err
			}
			cfg := kube.WithLimits(base, qps, burst, "keyway-unsealer")
			if !runSyncer && !runUnsealer {
				return usagef("--syncer=false and --unsealer=false leave nothing to run")
			}
			ctx := cmd.Context()
			// One registry: the unsealer's /metrics serves the syncer's figures too.
			reg := prometheus.NewRegistry()
			var runs []func(context.Context) error
			if runUnsealer {
				client, err := kubernetes.NewForConfig(cfg)
				if err != nil {
					return err
				}
				dyn, err := dynamic.NewForConfig(cfg)
				if err != nil {
					return err
				}
				u := sealedsecrets.New(client, dyn, sealedsecrets.Options{Namespace: kf.Namespace, KeyRenewPeriod: renew, KeyBits: bits, Workers: workers, ResyncPeriod: resync, Logger: a.log, Registry: reg})
				if err := u.Start(ctx); err != nil {
					return err
				}
				l, err := net.Listen("tcp", listen)
				if err != nil {
					return fmt.Errorf("--listen %s: %w", listen, err)
				}
				handler := u.Handler()
				if metricsListen != "" {
					// Metrics apart: --listen then serves the API alone, to the users who seal.
					ml, err := net.Listen("tcp", metricsListen)
					if err != nil {
						return fmt.Errorf("--metrics-listen %s: %w", metricsListen, err)
					}
					msrv := &http.Server{Handler: u.MetricsHandler(), ReadHeaderTimeout: 10 * time.Second}
					go func() { _ = msrv.Serve(ml) }()
					defer msrv.Close()
					handler = u.APIHandler()
				}
				srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
				go func() { _ = srv.Serve(l) }()
				defer srv.Close()
				a.log.Info("unsealer serving", "address", l.Addr().String(), "namespace", kf.Namespace)
				runs = append(runs, u.Run)
			}
			if runSyncer {
				so.ControllerClass, so.Logger, so.Registry = controllerClass, a.log, reg
				if so.StoreQPS <= 0 || so.StoreBurst < 1 {
					return usagef("--store-qps and --store-burst must be positive")
				}
				syncer, err := newSyncer(base, qps, burst, so, a)
				if err != nil {
					return err
				}
				if syncer != nil {
					runs = append(runs, syncer.Run)
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
			if !leaderElect {
				work(ctx)
				return nil
			}
			// The lease has a client of its own: renewal never waits behind reconciles.
			lease.Namespace, lease.Name, lease.Logger = kf.Namespace, leaseName, a.log
			return kube.Lead(ctx, base, lease, work)
		},
	}
	kf.BindFlags(cmd.Flags())
	cmd.Flags().StringVar(&listen, "listen", ":8080", "HTTP address for the API (cert.pem, verify, rotate), health and, without --metrics-listen, metrics")
	cmd.Flags().StringVar(&metricsListen, "metrics-listen", "", "HTTP address for /metrics alone (then --listen serves no metrics): keep monitoring apart from the sealing API")
	cmd.Flags().DurationVar(&renew, "key-renew-period", 30*24*time.Hour, "generate a new sealing key when the newest is this old (0 disables)")
	cmd.Flags().IntVar(&bits, "key-bits", sealing.KeyBits, "RSA key size for new keys")
	cmd.Flags().IntVar(&workers, "workers", 2*runtime.GOMAXPROCS(0), "SealedSecrets reconciled at once (decryption is bound by the cores; twice as many overlap it with API calls)")
	cmd.Flags().Float32Var(&qps, "kube-qps", kube.DefaultQPS, "requests per second to the API server (client-side limit; client-go's default is 5)")
	cmd.Flags().IntVar(&burst, "kube-burst", kube.DefaultBurst, "requests allowed in a burst above --kube-qps")
	cmd.Flags().DurationVar(&resync, "resync-period", 10*time.Minute, "how often every SealedSecret is checked again (reads only unless something changed)")
	cmd.Flags().BoolVar(&leaderElect, "leader-elect", true, "elect one leader among replicas (Lease in --namespace)")
	cmd.Flags().StringVar(&leaseName, "leader-election-id", "keyway-unsealer", "name of the leader-election Lease")
	cmd.Flags().BoolVar(&runUnsealer, "unsealer", true, "run the SealedSecret unsealer (and its HTTP API)")
	cmd.Flags().BoolVar(&runSyncer, "syncer", true, "run the ExternalSecret syncer (off by itself when the external-secrets.io CRDs are not installed)")
	cmd.Flags().StringVar(&controllerClass, "controller-class", "", "handle only stores whose spec.controller is this (External Secrets' controller class), to run beside ESO")
	cmd.Flags().StringArrayVar(&so.VaultServers, "allow-vault-server", nil, "a Vault address (URL prefix) namespaced SecretStores may name (repeatable); by default only ClusterSecretStores name Vault servers")
	cmd.Flags().BoolVar(&so.AmbientCredentials, "allow-ambient-credentials", false, "let namespaced SecretStores without credentials use the controller's own AWS or GCP identity (ClusterSecretStores always may)")
	cmd.Flags().Float64Var(&so.StoreQPS, "store-qps", externalsecrets.DefaultStoreQPS, "backend reads per second per store (a store's keyway.dev/qps annotation overrides it)")
	cmd.Flags().IntVar(&so.StoreBurst, "store-burst", externalsecrets.DefaultStoreBurst, "backend reads allowed in a burst per store (keyway.dev/burst overrides it)")
	cmd.Flags().StringVar(&so.AWSEndpoint, "aws-endpoint", "", "AWS endpoint for every store (a VPC endpoint); stores cannot set one")
	cmd.Flags().StringVar(&so.GCPEndpoint, "gcp-endpoint", "", "GCP Secret Manager endpoint (host:port) for every store; stores cannot set one")
	cmd.Flags().StringVar(&so.GCPCAFile, "gcp-ca-file", "", "TLS roots for --gcp-endpoint and --gcp-token-url")
	cmd.Flags().StringVar(&so.GCPTokenURL, "gcp-token-url", "", "where service-account keys are exchanged for tokens (default Google's); a key naming another address is refused")
	cmd.Flags().DurationVar(&lease.LeaseDuration, "leader-election-lease-duration", 15*time.Second, "how long a leader's Lease holds without renewal: the longest a crashed leader's work waits")
	cmd.Flags().DurationVar(&lease.RenewDeadline, "leader-election-renew-deadline", 10*time.Second, "how long the leader keeps trying to renew before it gives up and exits")
	cmd.Flags().DurationVar(&lease.RetryPeriod, "leader-election-retry-period", 2*time.Second, "how often candidates try to take the Lease")
	return cmd
}

// newSyncer builds the ExternalSecret syncer, or returns nil (with a log line) when the
// cluster does not serve external-secrets.io/v1 ExternalSecrets.
func newSyncer(base *rest.Config, qps float32, burst int, o externalsecrets.SyncerOptions, a *app) (*externalsecrets.Syncer, error) {
	cfg := kube.WithLimits(base, qps, burst, "keyway-syncer")
	disc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	if _, err := disc.Discovery().ServerResourcesForGroupVersion("external-secrets.io/v1"); err != nil {
		a.log.Info("the ExternalSecret syncer is off: the cluster does not serve external-secrets.io/v1 (install the CRDs with: keyway crds | kubectl apply --server-side -f -)")
		return nil, nil
	}
	return externalsecrets.NewSyncer(cfg, o)
}
