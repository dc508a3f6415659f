package kube

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Controller client defaults: client-go's own (QPS 5, burst 10) cap a controller at five
// requests a second whatever the API server could take.
const (
	DefaultQPS   = 50
	DefaultBurst = 100
)

// WithLimits returns a copy of cfg with its own client-side rate limit and user agent.
// Each copy gets its own token bucket, so work on one never waits behind another's.
func WithLimits(cfg *rest.Config, qps float32, burst int, userAgent string) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.QPS, c.Burst, c.RateLimiter = qps, burst, nil
	if userAgent != "" {
		c.UserAgent = userAgent
	}
	return c
}

// ErrLostLeadership is returned by Lead when the lease was lost while leading: the process
// should exit (and be restarted) rather than carry on without knowing who leads.
var ErrLostLeadership = errors.New("leader election lost")

// LeaseOptions configure Lead. Zero durations take the usual 15 s / 10 s / 2 s.
type LeaseOptions struct {
	Namespace, Name                           string
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	Logger                                    *slog.Logger
}

// Lead runs run while this process holds the Lease, on a client of its own (QPS 5, as the
// lease needs no more) so renewal never queues behind the controller's work. It returns
// nil when ctx ends and ErrLostLeadership when the lease is lost while leading.
func Lead(ctx context.Context, cfg *rest.Config, o LeaseOptions, run func(context.Context)) error {
	if o.LeaseDuration == 0 {
		o.LeaseDuration, o.RenewDeadline, o.RetryPeriod = 15*time.Second, 10*time.Second, 2*time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	client, err := kubernetes.NewForConfig(WithLimits(cfg, 5, 10, "keyway-leader-election"))
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	id := host + "-" + hex.EncodeToString(b)
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: o.Name, Namespace: o.Namespace},
		Client:     client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: id},
	}
	var led atomic.Bool
	leCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		ReleaseOnCancel: true,
		LeaseDuration:   o.LeaseDuration,
		RenewDeadline:   o.RenewDeadline,
		RetryPeriod:     o.RetryPeriod,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				led.Store(true)
				o.Logger.Info("started leading", "identity", id)
				run(ctx)
			},
			OnStoppedLeading: func() { o.Logger.Info("stopped leading", "identity", id) },
			OnNewLeader:      func(l string) { o.Logger.Info("leader", "identity", l) },
		},
	})
	if err != nil {
		return err
	}
	le.Run(leCtx)
	if led.Load() && ctx.Err() == nil {
		return ErrLostLeadership
	}
	return nil
}
