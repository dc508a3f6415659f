package apps

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/keyway-dev/keyway/internal/redact"
	coordv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Sharding spreads applications over daemon replicas. Each replica announces itself with a
// Lease (label keyway.dev/daemon-member) that it renews; every replica sees the same live
// members and gives each root application to one of them by rendezvous hashing, so a
// member joining or leaving moves only its share. A member counts once its Lease is older
// than the lease duration (a newcomer waits, so the member that owned its share has
// stopped), and stops counting when its Lease is not renewed within the lease duration —
// a replica that cannot renew stops syncing before the others take over. On top of that,
// an operation (a sync that writes) holds the application's own Lease, so two replicas
// never write one application at once; a sync with nothing to write takes no lock.
type Sharding struct {
	Identity      string
	LeaseDuration time.Duration // default 15s
	RenewPeriod   time.Duration // default 2s
}

const labelMember = "keyway.dev/daemon-member"

// SetSharding turns sharding on for Run (before it starts).
func (d *Daemon) SetSharding(s *Sharding) { d.o.Sharding = s }

type sharder struct {
	o    Sharding
	kube kubernetes.Interface
	ns   string

	mu        sync.Mutex
	members   []string  // live, warmed-up members, sorted
	renewedAt time.Time // this member's last successful renewal
}

func (s *sharder) leaseName(id string) string { return "keyway-daemon-member-" + id }

// run renews this member's Lease and refreshes the member list until ctx ends.
func (s *sharder) run(ctx context.Context) {
	t := time.NewTicker(s.o.RenewPeriod)
	defer t.Stop()
	for {
		s.tick(ctx)
		select {
		case <-ctx.Done():
			// Leaving: others take over at once rather than after the lease runs out.
			_ = s.kube.CoordinationV1().Leases(s.ns).Delete(context.WithoutCancel(ctx), s.leaseName(s.o.Identity), metav1.DeleteOptions{})
			return
		case <-t.C:
		}
	}
}

func (s *sharder) tick(ctx context.Context) {
	leases := s.kube.CoordinationV1().Leases(s.ns)
	now := metav1.NewMicroTime(time.Now())
	secs := int32(s.o.LeaseDuration / time.Second)
	l, err := leases.Get(ctx, s.leaseName(s.o.Identity), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		l = &coordv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: s.leaseName(s.o.Identity), Namespace: s.ns, Labels: map[string]string{labelMember: "true"}},
			Spec: coordv1.LeaseSpec{HolderIdentity: &s.o.Identity, LeaseDurationSeconds: &secs, AcquireTime: &now, RenewTime: &now}}
		_, err = leases.Create(ctx, l, metav1.CreateOptions{FieldManager: fieldManager})
	case err == nil:
		l.Spec.RenewTime = &now
		_, err = leases.Update(ctx, l, metav1.UpdateOptions{FieldManager: fieldManager})
	}
	if err == nil {
		s.mu.Lock()
		s.renewedAt = now.Time
		s.mu.Unlock()
	}
	list, err := leases.List(ctx, metav1.ListOptions{LabelSelector: labelMember})
	if err != nil {
		return
	}
	var live []string
	for _, m := range list.Items {
		if m.Spec.HolderIdentity == nil || m.Spec.RenewTime == nil || m.Spec.AcquireTime == nil {
			continue
		}
		d := time.Duration(0)
		if m.Spec.LeaseDurationSeconds != nil {
			d = time.Duration(*m.Spec.LeaseDurationSeconds) * time.Second
		}
		if m.Spec.RenewTime.Add(d).After(now.Time) && !m.Spec.AcquireTime.Add(d).After(now.Time) {
			live = append(live, *m.Spec.HolderIdentity)
		}
	}
	slices.Sort(live)
	s.mu.Lock()
	s.members = live
	s.mu.Unlock()
}

// owns reports whether this member syncs the root application name now.
func (s *sharder) owns(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Since(s.renewedAt) > s.o.LeaseDuration*2/3 || !slices.Contains(s.members, s.o.Identity) {
		return false // not (yet, or any more) a member others count
	}
	best, bestScore := "", uint64(0)
	for _, m := range s.members {
		h := sha256.Sum256([]byte(m + "\x00" + name))
		if score := binary.BigEndian.Uint64(h[:8]); best == "" || score > bestScore {
			best, bestScore = m, score
		}
	}
	return best == s.o.Identity
}

// lock takes the application's Lease for an operation; release gives it back. A Lease held
// by another live holder means another replica is writing this application: skip.
func (s *sharder) lock(ctx context.Context, app string) (func(), error) {
	leases := s.kube.CoordinationV1().Leases(s.ns)
	name := "keyway-sync-" + app
	now := metav1.NewMicroTime(time.Now())
	secs := int32(s.o.LeaseDuration / time.Second * 40) // an operation may wait for health
	l, err := leases.Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		l = &coordv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ns},
			Spec: coordv1.LeaseSpec{HolderIdentity: &s.o.Identity, LeaseDurationSeconds: &secs, AcquireTime: &now, RenewTime: &now}}
		l, err = leases.Create(ctx, l, metav1.CreateOptions{FieldManager: fieldManager})
	case err == nil:
		holder := ""
		if l.Spec.HolderIdentity != nil {
			holder = *l.Spec.HolderIdentity
		}
		s.mu.Lock()
		alive := slices.Contains(s.members, holder)
		s.mu.Unlock()
		expired := l.Spec.RenewTime == nil || l.Spec.LeaseDurationSeconds == nil ||
			l.Spec.RenewTime.Add(time.Duration(*l.Spec.LeaseDurationSeconds)*time.Second).Before(now.Time)
		if holder != s.o.Identity && alive && !expired {
			return nil, fmt.Errorf("replica %s is syncing application %s", holder, app)
		}
		l.Spec.HolderIdentity, l.Spec.AcquireTime, l.Spec.RenewTime, l.Spec.LeaseDurationSeconds = &s.o.Identity, &now, &now, &secs
		l, err = leases.Update(ctx, l, metav1.UpdateOptions{FieldManager: fieldManager})
	}
	if err != nil {
		return nil, fmt.Errorf("the sync lock of %s: %s", app, redact.APIError(err))
	}
	uid := l.UID
	return func() {
		_ = leases.Delete(context.WithoutCancel(ctx), name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
	}, nil
}
