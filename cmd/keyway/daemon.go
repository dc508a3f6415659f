package main

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/client-go/kubernetes"

	"github.com/keyway-dev/keyway/internal/gitsource"
	"github.com/keyway-dev/keyway/internal/kube"
	"github.com/keyway-dev/keyway/providers"
	"github.com/keyway-dev/keyway/sync/apps"
)

// daemonOptions are `keyway daemon`'s settings.
type daemonOptions struct {
	Kubeconfig, Context  string
	Apps                 []string
	Interval             time.Duration
	Once                 bool
	Rewrites             []string
	StateNamespace       string
	StatusAddr           string
	WebhookSecretFile    string
	WebhookGitLabFile    string
	WebhookBitbucketFile string
	CacheDir             string
	KnownHosts           string
	GitTimeout           time.Duration
	AppWorkers           int
	AllowRepos           []string
	RepoClusters         bool
	ClusterAnnExcluded   []string
	MaxPrune             int
	WaveTimeout          time.Duration
	QPS                  float32
	Burst                int
	LeaderElect          bool
	Shard                bool
	Lease                kube.LeaseOptions
}

// renderOnlyFlags are render's flags that make no sense for the daemon (Applications say
// how to render).
// beforeSyncHook is nil but in tests: the test binary, run as keyway, sets it to inject a
// panic into one application's sync (KEYWAY_TEST_PANIC_APP).
var beforeSyncHook func(key string)

var renderOnlyFlags = map[string]bool{"output": true, "source": true, "release-name": true, "namespace": true, "values": true,
	"set": true, "set-string": true, "skip-crds": true, "skip-tests": true, "kube-version": true, "api-versions": true, "seal-namespace": true}

func newDaemonCommand(a *app) *cobra.Command {
	var o daemonOptions
	var ro renderOptions
	var af argocdFlags
	cmd := &cobra.Command{
		Use:   "daemon --app PATH [--app PATH...] [flags]",
		Short: "Render and apply Argo CD Applications from git: git → render → apply → prune → health",
		Long: `daemon syncs Argo CD Application manifests (argoproj.io/v1alpha1) into the cluster of
--kubeconfig without Argo CD: it fetches each application's git source, renders it with
keyway's engine (plain directories, Helm charts, kustomizations; secret references resolved
from the backend flags, as in 'keyway render'), and applies the result with server-side
apply, wave by wave, waiting for health. Applications in a rendered output are child
applications (App of Apps) and sync in their parent's wave.

  --once    sync every application once, print one line per application, exit 0 when all
            are Synced and Healthy, 1 otherwise
  default   keep running: poll git every --interval, revert drift of self-healing
            applications as soon as the watch sees it, serve --status-addr; sync
            --app-workers applications side by side (a wave waiting for health holds no
            worker); read the --app files again every interval

On SIGTERM (with or without leader election) no new sync starts; a sync in progress stops
at its next wave boundary (a wave or hook phase waiting for health is left at once) and the
next start continues it from the inventory.

What a sync does, as Argo CD does unless said:
  - every object is checked with a server-side dry run before any is written; a sync with
    nothing to change writes nothing
  - each object gets argocd.argoproj.io/tracking-id; what an application applied is kept in
    a ConfigMap keyway-app-<name> in --state-namespace (references only)
  - waves (argocd.argoproj.io/sync-wave), Argo CD's kind order, hooks (PreSync, Sync,
    PostSync, SyncFail; hook-delete-policy), CreateNamespace=true, ignoreDifferences
    (jsonPointers, jqPathExpressions, managedFieldsManagers), RespectIgnoreDifferences=true,
    retry
  - prune (syncPolicy.automated.prune) deletes only objects the inventory lists and that
    still carry the application's tracking id; Prune=false and Prune=confirm are honoured.
    Safer than Argo CD: a failed render never prunes, an empty render never prunes unless
    allowEmpty, and a sync that would prune more than --max-prune percent of an application
    is held until confirmed (the status names the kubectl command)

Repositories: https/http (credentials from Argo CD repository Secrets in --state-namespace),
ssh (keys from those Secrets, host keys from --git-known-hosts, always checked), git://, and
local paths (file:// or absolute; go-git runs the git binary's upload-pack for these, so git
must be installed for local repositories only). --git-rewrite FROM=TO maps URLs by prefix as
git's insteadOf does. A child application may only name its roots' repositories (or
--allow-repo prefixes), and never a local path of its own: a repository cannot make the
daemon read another repository or the machine's files.`,
		Example: `  # the guide's root-app.yaml, its repository mirrored locally
  keyway daemon --once --app root-app.yaml \
    --git-rewrite https://github.com/your-org/=file:///srv/git/ \
    --secrets-file secrets.enc.yaml --age-identity key.txt

  # in cluster (examples/daemon/), Vault with Kubernetes auth
  keyway daemon --app /etc/keyway/apps --backend vault \
    --vault-address https://vault:8200 --vault-auth-method kubernetes --vault-role keyway`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDaemon(cmd, a, &o, &ro, &af)
		},
	}
	bindDaemonFlags(cmd.Flags(), &o, &ro, &af, true)
	cmd.AddCommand(newDaemonExportCommand(a), newDaemonImportCommand(a))
	return cmd
}

// bindDaemonFlags binds the daemon's flags; run adds those of a running daemon (`keyway
// diff` takes the rest).
func bindDaemonFlags(fs *pflag.FlagSet, o *daemonOptions, ro *renderOptions, af *argocdFlags, run bool) {
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster, then $KUBECONFIG, then ~/.kube/config)")
	fs.StringVar(&o.Context, "context", "", "kubeconfig context")
	fs.StringArrayVar(&o.Apps, "app", nil, "Argo CD Application manifest: a file or a directory of them (repeatable)")
	fs.StringArrayVar(&o.Rewrites, "git-rewrite", nil, "FROM=TO: repository URLs starting with FROM use TO instead, as git's url.TO.insteadOf=FROM (repeatable)")
	fs.StringVar(&o.StateNamespace, "state-namespace", "keyway-system", "namespace of the inventories, repository Secrets and the leader Lease")
	fs.StringVar(&o.CacheDir, "cache-dir", "", "where git clones are kept (default: the user cache directory)")
	fs.DurationVar(&o.GitTimeout, "git-timeout", gitsource.DefaultTimeout, "a git fetch (credentials, refs and pack) that has not finished after this long fails its application's sync; a server that accepts and never answers holds nothing longer")
	fs.StringVar(&o.KnownHosts, "git-known-hosts", "", "ssh_known_hosts file for ssh repositories (ssh is refused without it)")
	fs.StringArrayVar(&o.AllowRepos, "allow-repo", nil, "repository URL prefix child applications may use besides their roots' repositories (repeatable)")
	fs.BoolVar(&o.RepoClusters, "repo-clusters-generator", false, "let ApplicationSets found in repositories use the clusters generator (they then see every cluster Secret's name, server, project, labels and annotations)")
	fs.StringArrayVar(&o.ClusterAnnExcluded, "cluster-annotation-exclude", nil, "annotation key prefix of cluster Secrets never given to ApplicationSet templates (repeatable; kubectl's last-applied-configuration never is)")
	fs.Float32Var(&o.QPS, "kube-qps", kube.DefaultQPS, "requests per second to the API server (client-side limit)")
	fs.IntVar(&o.Burst, "kube-burst", kube.DefaultBurst, "requests allowed in a burst above --kube-qps")
	if run {
		fs.DurationVar(&o.Interval, "interval", 3*time.Minute, "how often git is polled (Argo CD's default is 3m)")
		fs.BoolVar(&o.Once, "once", false, "sync every application once and exit: 0 when all are Synced and Healthy, 1 otherwise")
		fs.StringVar(&o.StatusAddr, "status-addr", ":9090", "HTTP address for /healthz, /metrics and /apps (empty: none)")
		fs.StringVar(&o.WebhookSecretFile, "webhook-secret-file", "", "file holding the HMAC key of GitHub and Bitbucket Server push webhooks: serves POST /api/webhook on --status-addr")
		fs.StringVar(&o.WebhookGitLabFile, "webhook-gitlab-token-file", "", "file holding GitLab's webhook token (sent in the clear: a secret of its own, never the HMAC key)")
		fs.StringVar(&o.WebhookBitbucketFile, "webhook-bitbucket-uuid-file", "", "file holding Bitbucket Cloud's hook UUID (sent in the clear: a secret of its own)")
		fs.IntVar(&o.MaxPrune, "max-prune", 50, "percent of an application's objects one sync may prune without confirmation")
		fs.IntVar(&o.AppWorkers, "app-workers", 10, "applications synced side by side (Argo CD's operation processors): one that is slow, or waits for a wave's health, holds only its own worker")
		fs.DurationVar(&o.WaveTimeout, "wave-timeout", 5*time.Minute, "a wave that is not healthy after this long fails the sync (status Degraded, with the reason)")
		fs.BoolVar(&o.LeaderElect, "leader-elect", true, "one active daemon per --state-namespace (a Lease); ignored with --once and --shard")
		fs.BoolVar(&o.Shard, "shard", false, "spread the applications over every replica started with --shard (each announces itself with a Lease in --state-namespace; a dead replica's applications move to the others within the lease duration)")
		fs.DurationVar(&o.Lease.LeaseDuration, "leader-election-lease-duration", 15*time.Second, "how long a leader's Lease holds without renewal")
		fs.DurationVar(&o.Lease.RenewDeadline, "leader-election-renew-deadline", 10*time.Second, "how long the leader keeps trying to renew before it exits")
		fs.DurationVar(&o.Lease.RetryPeriod, "leader-election-retry-period", 2*time.Second, "how often candidates try to take the Lease")
	} else {
		// diff still needs the values it validates.
		o.Interval, o.MaxPrune, o.WaveTimeout = 3*time.Minute, 100, 5*time.Minute
	}
	tmp := pflag.NewFlagSet("render", pflag.ContinueOnError)
	ro.BindFlags(tmp)
	tmp.VisitAll(func(f *pflag.Flag) {
		if !renderOnlyFlags[f.Name] {
			fs.AddFlag(f)
		}
	})
	af.BindFlags(fs)
}

func runDaemon(cmd *cobra.Command, a *app, o *daemonOptions, ro *renderOptions, af *argocdFlags) error {
	if !o.Once && (o.LeaderElect || o.Shard) && (o.Lease.RetryPeriod <= 0 || o.Lease.RenewDeadline <= o.Lease.RetryPeriod || o.Lease.LeaseDuration <= o.Lease.RenewDeadline) {
		return usagef("want 0 < --leader-election-retry-period < --leader-election-renew-deadline < --leader-election-lease-duration")
	}
	d, reg, closeAll, err := setupDaemon(cmd, a, o, ro, af, !o.Once)
	if err != nil {
		return err
	}
	defer closeAll()
	ctx := cmd.Context()
	if o.StatusAddr != "" && !o.Once {
		l, err := net.Listen("tcp", o.StatusAddr)
		if err != nil {
			return fmt.Errorf("--status-addr %s: %w", o.StatusAddr, err)
		}
		mux := http.NewServeMux()
		mux.Handle("/", d.Handler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{})))
		var hooks apps.WebhookSecrets
		for _, s := range []struct {
			flag, file string
			into       *[]byte
		}{{"--webhook-secret-file", o.WebhookSecretFile, &hooks.HMAC}, {"--webhook-gitlab-token-file", o.WebhookGitLabFile, &hooks.GitLabToken},
			{"--webhook-bitbucket-uuid-file", o.WebhookBitbucketFile, &hooks.BitbucketUUID}} {
			if s.file == "" {
				continue
			}
			secret, err := os.ReadFile(s.file)
			if err != nil || len(strings.TrimSpace(string(secret))) < 16 {
				return usagef("%s: want a readable file of at least 16 characters", s.flag)
			}
			*s.into = []byte(strings.TrimSpace(string(secret)))
		}
		if string(hooks.HMAC) != "" && (string(hooks.HMAC) == string(hooks.GitLabToken) || string(hooks.HMAC) == string(hooks.BitbucketUUID)) {
			return usagef("--webhook-secret-file is the HMAC key: a token sent in the clear (GitLab, Bitbucket Cloud) must be another secret")
		}
		if hooks.HMAC != nil || hooks.GitLabToken != nil || hooks.BitbucketUUID != nil {
			mux.Handle("/api/webhook", d.Webhook(hooks))
		}
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(l) }()
		defer srv.Close()
		a.log.Info("daemon serving status", "address", l.Addr().String())
	}
	if o.Once {
		return printOnce(a, d.SyncAll(ctx, apps.Explicit))
	}
	run := func(ctx context.Context) {
		if err := d.Run(ctx, o.Interval); err != nil && !errors.Is(err, context.Canceled) {
			a.log.Error("daemon stopped", "error", err)
		}
	}
	if o.Shard {
		host, _ := os.Hostname()
		id := strings.Trim(regexp.MustCompile(`[^a-z0-9-]+`).ReplaceAllString(strings.ToLower(fmt.Sprintf("%s-%d", host, os.Getpid())), "-"), "-")
		d.SetSharding(&apps.Sharding{Identity: id, LeaseDuration: o.Lease.LeaseDuration, RenewPeriod: o.Lease.RetryPeriod})
		a.log.Info("sharding", "identity", id)
		run(ctx)
		return nil
	}
	if !o.LeaderElect {
		run(ctx)
		return nil
	}
	base, err := (&kubeFlags{Kubeconfig: o.Kubeconfig, Context: o.Context}).config()
	if err != nil {
		return err
	}
	o.Lease.Namespace, o.Lease.Name, o.Lease.Logger = o.StateNamespace, "keyway-daemon", a.log
	return kube.Lead(ctx, base, o.Lease, run)
}

// setupDaemon checks the flags and builds the daemon with its applications, projects and
// sets; closeAll releases the backend clients (revoking Vault tokens).
// values, when not nil, collects every secret value the renders read (for redaction).
// run says the daemon keeps running (not --once, not diff).
func setupDaemon(cmd *cobra.Command, a *app, o *daemonOptions, ro *renderOptions, af *argocdFlags, run bool) (*apps.Daemon, *prometheus.Registry, func(), error) {
	if len(o.Apps) == 0 {
		return nil, nil, nil, usagef("--app is required: an Application manifest or a directory of them")
	}
	if o.Interval < time.Second || o.WaveTimeout <= 0 || o.QPS <= 0 || o.Burst < 1 {
		return nil, nil, nil, usagef("--interval (at least 1s), --wave-timeout, --kube-qps and --kube-burst must be positive")
	}
	if o.MaxPrune < 1 || o.MaxPrune > 100 {
		return nil, nil, nil, usagef("--max-prune %d: want 1 to 100", o.MaxPrune)
	}
	if o.AppWorkers < 0 || o.AppWorkers > 1000 || o.GitTimeout < 0 {
		return nil, nil, nil, usagef("--app-workers %d: want 1 to 1000 (and --git-timeout may not be negative)", o.AppWorkers)
	}
	var rewrites []gitsource.Rewrite
	for _, r := range o.Rewrites {
		from, to, ok := strings.Cut(r, "=")
		if !ok || from == "" || to == "" {
			return nil, nil, nil, usagef("--git-rewrite %q: want FROM=TO", r)
		}
		rewrites = append(rewrites, gitsource.Rewrite{From: from, To: to})
	}
	for i, r := range o.AllowRepos {
		canon, err := gitsource.CanonicalURL(r)
		if err != nil {
			return nil, nil, nil, usagef("--allow-repo: %v", err)
		}
		o.AllowRepos[i] = canon
	}
	if err := applyEnv(cmd, a.env); err != nil {
		return nil, nil, nil, err
	}
	if err := ro.complete(cmd, a.env); err != nil {
		return nil, nil, nil, err
	}
	pol, err := af.policy()
	if err != nil {
		return nil, nil, nil, err
	}
	// The running daemon leaves a refused file out (its status says why) and reads the
	// files again each interval; --once and diff refuse them all, as a CI job wants.
	m, refused := apps.LoadEach(o.Apps)
	if !run {
		if m, err = apps.Load(o.Apps); err != nil {
			return nil, nil, nil, usageError{err}
		}
	} else if len(m.Apps)+len(m.Sets) == 0 {
		if _, err := apps.Load(o.Apps); err != nil {
			return nil, nil, nil, usageError{err}
		}
	}
	// Settings are checked now, not at the first render.
	if _, err := ro.settings(cmd, a); err != nil {
		return nil, nil, nil, err
	}
	ctx := cmd.Context()
	var sealTo *rsa.PublicKey
	if ro.SealTo != "" {
		if sealTo, err = loadCert(ctx, ro.SealTo); err != nil {
			return nil, nil, nil, err
		}
	}
	base, err := (&kubeFlags{Kubeconfig: o.Kubeconfig, Context: o.Context}).config()
	if err != nil {
		return nil, nil, nil, err
	}
	cfg := kube.WithLimits(base, o.QPS, o.Burst, "keyway-daemon")
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	cacheDir := o.CacheDir
	if cacheDir == "" {
		d, err := os.UserCacheDir()
		if err != nil {
			return nil, nil, nil, usagef("--cache-dir: no user cache directory (%v); name one", err)
		}
		cacheDir = filepath.Join(d, "keyway", "git")
	}
	git, err := gitsource.New(gitsource.Options{Dir: cacheDir, Rewrites: rewrites, Timeout: o.GitTimeout, Auth: gitsource.SecretAuth(client, o.StateNamespace, o.KnownHosts)})
	if err != nil {
		return nil, nil, nil, err
	}
	pool := providers.NewPool(registry(), a.log, 10*time.Minute)
	closeAll := func() {
		if err := pool.Close(); err != nil {
			a.log.Warn("closing backend clients", "error", err)
		}
	}
	reg := prometheus.NewRegistry()
	renderFn, inputReader := daemonRenderer(cmd, a, ro, pol, pool, sealTo)
	var reload func() (apps.Manifests, map[string]error)
	if run {
		reload = func() (apps.Manifests, map[string]error) { return apps.LoadEach(o.Apps) }
	}
	d, err := apps.New(apps.Options{Config: cfg, Git: git, StateNamespace: o.StateNamespace, MaxPrune: o.MaxPrune, WaveTimeout: o.WaveTimeout,
		AllowRepos: o.AllowRepos, RepoClustersGenerator: o.RepoClusters, ClusterAnnotationsExcluded: o.ClusterAnnExcluded, Logger: a.log, Registry: reg,
		Render: renderFn, Inputs: inputReader, Workers: o.AppWorkers, Reload: reload, BeforeSync: beforeSyncHook})
	if err != nil {
		return nil, nil, nil, err
	}
	if run {
		d.Reload(ctx, m, refused)
		return d, reg, closeAll, nil
	}
	if err := d.Add(m.Apps...); err != nil {
		return nil, nil, nil, usageError{err}
	}
	if err := d.AddProjects(m.Projects...); err != nil {
		return nil, nil, nil, usageError{err}
	}
	if err := d.AddSets(m.Sets...); err != nil {
		return nil, nil, nil, usageError{err}
	}
	return d, reg, closeAll, nil
}
