package externalsecrets

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/cache"

	ctl "github.com/keyway-dev/keyway/internal/kube"
)

// A refresh that does not happen must not pass for one that did: an ExternalSecret whose
// last refresh is older than twice its refreshInterval (and a minute) is overdue. It is
// counted at each scrape (keyway_syncer_externalsecrets_overdue), gets a Warning event
// RefreshOverdue once per episode, and is queued at once; its Ready condition keeps saying
// what the last refresh found, as External Secrets' does.

const overdueCheckEvery = time.Minute

// overdueSince reports whether u's periodic refresh is overdue at now, and since when it
// was due.
func overdueSince(u *unstructured.Unstructured, now time.Time) (time.Time, bool) {
	policy, _, _ := unstructured.NestedString(u.Object, "spec", "refreshPolicy")
	if policy != "" && policy != "Periodic" {
		return time.Time{}, false
	}
	interval := time.Hour
	if v, ok, _ := unstructured.NestedString(u.Object, "spec", "refreshInterval"); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			return time.Time{}, false
		}
		interval = d
	}
	if interval <= 0 {
		return time.Time{}, false
	}
	v, _, _ := unstructured.NestedString(u.Object, "status", "refreshTime")
	last, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, false // never synced: its status says why
	}
	due := last.Add(interval)
	return due, now.After(last.Add(2*interval + time.Minute))
}

// checkOverdue warns about and queues the ExternalSecrets overdue at now.
func (s *Syncer) checkOverdue(now time.Time) {
	for _, item := range s.esInf.GetStore().List() {
		u := item.(*unstructured.Unstructured)
		key, err := cache.MetaNamespaceKeyFunc(u)
		if err != nil {
			continue
		}
		due, late := overdueSince(u, now)
		s.timersMu.Lock()
		warned := s.overdue[key] == due
		if late {
			s.overdue[key] = due
		} else {
			delete(s.overdue, key)
		}
		s.timersMu.Unlock()
		if !late {
			continue
		}
		if !warned {
			s.rec.Eventf(u, corev1.EventTypeWarning, "RefreshOverdue", "the refresh due at %s has not happened; the target holds what was read before", due.UTC().Format(time.RFC3339))
		}
		s.queue.Add(key, ctl.High)
	}
}
