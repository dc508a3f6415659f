package apply

import (
	"fmt"
	"strings"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// HealthStatus is Argo CD's health vocabulary.
type HealthStatus string

// Health states, from best to worst as Argo CD orders them for an application.
const (
	Healthy     HealthStatus = "Healthy"
	Suspended   HealthStatus = "Suspended"
	Progressing HealthStatus = "Progressing"
	Missing     HealthStatus = "Missing"
	Degraded    HealthStatus = "Degraded"
	Unknown     HealthStatus = "Unknown"
)

// Worse reports whether h is worse than o, in Argo CD's order.
func (h HealthStatus) Worse(o HealthStatus) bool { return rank[h] > rank[o] }

// Rank is h's place in that order, 0 for Healthy to 5 for Unknown (anything else counts
// as Unknown here): the value of the daemon's health metric.
func (h HealthStatus) Rank() int {
	if r, ok := rank[h]; ok {
		return r
	}
	return rank[Unknown]
}

var rank = map[HealthStatus]int{Healthy: 0, Suspended: 1, Progressing: 2, Missing: 3, Degraded: 4, Unknown: 5}

// Health is an object's health and why.
type Health struct {
	Status  HealthStatus `json:"status"`
	Message string       `json:"message,omitempty"`
}

// HealthOf judges a live object by Argo CD's built-in rules for the workload kinds, Argo
// Rollouts' Rollout by the logic of Argo CD's Rollout check, a Ready condition for custom
// resources that report one (ExternalSecret, SealedSecret, keyway's own), and kstatus
// for everything else. Messages come from the object's status, never its data.
func HealthOf(u *unstructured.Unstructured) Health {
	if u == nil {
		return Health{Status: Missing}
	}
	if u.GetDeletionTimestamp() != nil {
		return Health{Progressing, "being deleted"}
	}
	gk := u.GroupVersionKind().GroupKind()
	switch gk.Group + "/" + gk.Kind {
	case "apps/Deployment":
		return deploymentHealth(u)
	case "apps/StatefulSet":
		return statefulSetHealth(u)
	case "apps/DaemonSet":
		return daemonSetHealth(u)
	case "apps/ReplicaSet":
		return replicaSetHealth(u)
	case "/Pod":
		return podHealth(u)
	case "/PersistentVolumeClaim":
		return pvcHealth(u)
	case "/Service":
		return serviceHealth(u)
	case "networking.k8s.io/Ingress", "extensions/Ingress":
		return ingressHealth(u)
	case "batch/Job":
		return jobHealth(u)
	case "apiregistration.k8s.io/APIService":
		return apiServiceHealth(u)
	case "autoscaling/HorizontalPodAutoscaler":
		return hpaHealth(u)
	case "argoproj.io/Rollout":
		return rolloutHealth(u)
	case "argoproj.io/Application":
		return Health{Status: Healthy} // a child application reports its own health
	}
	if c, ok := condition(u, "Ready"); ok {
		switch c.status {
		case "True":
			return Health{Healthy, c.message}
		case "False":
			return Health{Degraded, reasonMessage(c)}
		}
		return Health{Progressing, reasonMessage(c)}
	}
	res, err := status.Compute(u)
	if err != nil {
		return Health{Unknown, err.Error()}
	}
	switch res.Status {
	case status.CurrentStatus:
		return Health{Status: Healthy}
	case status.FailedStatus:
		return Health{Degraded, res.Message}
	case status.InProgressStatus, status.TerminatingStatus:
		return Health{Progressing, res.Message}
	case status.NotFoundStatus:
		return Health{Status: Missing}
	}
	return Health{Unknown, res.Message}
}

type cond struct{ status, reason, message string }

func condition(u *unstructured.Unstructured, typ string) (cond, bool) {
	list, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, item := range list {
		m, ok := item.(map[string]any)
		if !ok || m["type"] != typ {
			continue
		}
		s, _ := m["status"].(string)
		r, _ := m["reason"].(string)
		msg, _ := m["message"].(string)
		return cond{s, r, msg}, true
	}
	return cond{}, false
}

func reasonMessage(c cond) string {
	if c.message == "" {
		return c.reason
	}
	if c.reason == "" {
		return c.message
	}
	return c.reason + ": " + c.message
}

func num(u *unstructured.Unstructured, fields ...string) int64 {
	v, _, _ := unstructured.NestedFieldNoCopy(u.Object, fields...)
	switch n := v.(type) {
	case int64:
		return n
	case float64:
		return int64(n)
	case int:
		return int64(n)
	}
	return 0
}

func str(u *unstructured.Unstructured, fields ...string) string {
	s, _, _ := unstructured.NestedString(u.Object, fields...)
	return s
}

// observed reports whether the controller has seen the object's latest spec.
func observed(u *unstructured.Unstructured) bool {
	return num(u, "status", "observedGeneration") >= u.GetGeneration()
}

// replicas is spec.replicas with Kubernetes' default of 1.
func replicas(u *unstructured.Unstructured) int64 {
	if _, ok, _ := unstructured.NestedFieldNoCopy(u.Object, "spec", "replicas"); !ok {
		return 1
	}
	return num(u, "spec", "replicas")
}

func deploymentHealth(u *unstructured.Unstructured) Health {
	if paused, _, _ := unstructured.NestedBool(u.Object, "spec", "paused"); paused {
		return Health{Suspended, "Deployment is paused"}
	}
	if !observed(u) {
		return Health{Progressing, "Waiting for rollout to finish: observed deployment generation less than desired generation"}
	}
	if c, ok := condition(u, "Progressing"); ok && c.reason == "ProgressDeadlineExceeded" {
		return Health{Degraded, fmt.Sprintf("Deployment %q exceeded its progress deadline", u.GetName())}
	}
	want, updated := replicas(u), num(u, "status", "updatedReplicas")
	total, available := num(u, "status", "replicas"), num(u, "status", "availableReplicas")
	switch {
	case updated < want:
		return Health{Progressing, fmt.Sprintf("Waiting for rollout to finish: %d out of %d new replicas have been updated...", updated, want)}
	case total > updated:
		return Health{Progressing, fmt.Sprintf("Waiting for rollout to finish: %d old replicas are pending termination...", total-updated)}
	case available < updated:
		return Health{Progressing, fmt.Sprintf("Waiting for rollout to finish: %d of %d updated replicas are available...", available, updated)}
	}
	return Health{Status: Healthy}
}

func statefulSetHealth(u *unstructured.Unstructured) Health {
	if !observed(u) {
		return Health{Progressing, "Waiting for statefulset spec update to be observed..."}
	}
	want, ready := replicas(u), num(u, "status", "readyReplicas")
	if ready < want {
		return Health{Progressing, fmt.Sprintf("Waiting for %d pods to be ready...", want-ready)}
	}
	if str(u, "spec", "updateStrategy", "type") == "OnDelete" {
		return Health{Healthy, "statefulset has OnDelete update strategy"}
	}
	partition := num(u, "spec", "updateStrategy", "rollingUpdate", "partition")
	if partition > 0 {
		if updated := num(u, "status", "updatedReplicas"); updated < want-partition {
			return Health{Progressing, fmt.Sprintf("Waiting for partitioned roll out to finish: %d out of %d new pods have been updated...", updated, want-partition)}
		}
		return Health{Status: Healthy}
	}
	if cur, upd := str(u, "status", "currentRevision"), str(u, "status", "updateRevision"); cur != upd {
		return Health{Progressing, "waiting for statefulset rolling update to complete"}
	}
	return Health{Status: Healthy}
}

func daemonSetHealth(u *unstructured.Unstructured) Health {
	if !observed(u) {
		return Health{Progressing, "Waiting for rollout to finish: observed daemon set generation less than desired generation"}
	}
	if str(u, "spec", "updateStrategy", "type") == "OnDelete" {
		return Health{Healthy, "daemon set has OnDelete update strategy"}
	}
	desired := num(u, "status", "desiredNumberScheduled")
	if upd := num(u, "status", "updatedNumberScheduled"); upd < desired {
		return Health{Progressing, fmt.Sprintf("Waiting for daemon set %q rollout to finish: %d out of %d new pods have been updated...", u.GetName(), upd, desired)}
	}
	if avail := num(u, "status", "numberAvailable"); avail < desired {
		return Health{Progressing, fmt.Sprintf("Waiting for daemon set %q rollout to finish: %d of %d updated pods are available...", u.GetName(), avail, desired)}
	}
	return Health{Status: Healthy}
}

func replicaSetHealth(u *unstructured.Unstructured) Health {
	if !observed(u) {
		return Health{Progressing, "Waiting for rollout to finish: observed replica set generation less than desired generation"}
	}
	if c, ok := condition(u, "ReplicaFailure"); ok && c.status == "True" {
		return Health{Degraded, c.message}
	}
	if want, avail := replicas(u), num(u, "status", "availableReplicas"); avail < want {
		return Health{Progressing, fmt.Sprintf("Waiting for rollout to finish: %d out of %d new replicas are available...", avail, want)}
	}
	return Health{Status: Healthy}
}

func podHealth(u *unstructured.Unstructured) Health {
	msg := str(u, "status", "message")
	statuses, _, _ := unstructured.NestedSlice(u.Object, "status", "containerStatuses")
	for _, s := range statuses {
		m, _ := s.(map[string]any)
		waiting, _, _ := unstructured.NestedString(m, "state", "waiting", "reason")
		if waiting != "" && (strings.HasPrefix(waiting, "Err") || strings.HasSuffix(waiting, "Error") || strings.HasSuffix(waiting, "BackOff")) {
			return Health{Degraded, waiting}
		}
	}
	switch str(u, "status", "phase") {
	case "Pending":
		return Health{Progressing, msg}
	case "Succeeded":
		return Health{Healthy, msg}
	case "Failed":
		return Health{Degraded, msg}
	case "Running":
		if p := str(u, "spec", "restartPolicy"); p == "Always" || p == "" {
			if c, ok := condition(u, "Ready"); ok && c.status == "True" {
				return Health{Healthy, msg}
			}
			return Health{Progressing, msg}
		}
		return Health{Progressing, msg}
	}
	return Health{Unknown, msg}
}

func pvcHealth(u *unstructured.Unstructured) Health {
	switch str(u, "status", "phase") {
	case "Lost":
		return Health{Status: Degraded}
	case "Bound":
		return Health{Status: Healthy}
	case "Pending":
		return Health{Status: Progressing}
	}
	return Health{Status: Unknown}
}

func loadBalanced(u *unstructured.Unstructured) bool {
	ing, _, _ := unstructured.NestedSlice(u.Object, "status", "loadBalancer", "ingress")
	return len(ing) > 0
}

func serviceHealth(u *unstructured.Unstructured) Health {
	if str(u, "spec", "type") == "LoadBalancer" && !loadBalanced(u) {
		return Health{Status: Progressing}
	}
	return Health{Status: Healthy}
}

func ingressHealth(u *unstructured.Unstructured) Health {
	if !loadBalanced(u) {
		return Health{Status: Progressing}
	}
	return Health{Status: Healthy}
}

func jobHealth(u *unstructured.Unstructured) Health {
	if c, ok := condition(u, "Failed"); ok && c.status == "True" {
		return Health{Degraded, c.message}
	}
	if c, ok := condition(u, "Complete"); ok && c.status == "True" {
		return Health{Healthy, c.message}
	}
	if s, _, _ := unstructured.NestedBool(u.Object, "spec", "suspend"); s {
		return Health{Suspended, "job is suspended"}
	}
	return Health{Status: Progressing}
}

func apiServiceHealth(u *unstructured.Unstructured) Health {
	if c, ok := condition(u, "Available"); ok {
		if c.status == "True" {
			return Health{Healthy, c.message}
		}
		return Health{Progressing, reasonMessage(c)}
	}
	return Health{Progressing, "Waiting to be processed"}
}

func hpaHealth(u *unstructured.Unstructured) Health {
	degraded := map[string]bool{"FailedGetScale": true, "FailedUpdateScale": true, "FailedGetResourceMetric": true, "InvalidSelector": true,
		"FailedComputeMetricsReplicas": true, "FailedGetObjectMetric": true, "FailedGetPodsMetric": true, "FailedGetExternalMetric": true}
	list, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	if len(list) == 0 {
		return Health{Progressing, "Waiting to Autoscale"}
	}
	for _, t := range []string{"AbleToScale", "ScalingActive"} {
		if c, ok := condition(u, t); ok && c.status == "False" && degraded[c.reason] {
			return Health{Degraded, reasonMessage(c)}
		}
	}
	if c, ok := condition(u, "ScalingActive"); ok && c.status == "False" && c.reason != "ScalingDisabled" {
		return Health{Progressing, reasonMessage(c)}
	}
	return Health{Status: Healthy}
}

// rolloutHealth follows Argo CD's check for Argo Rollouts: paused is Suspended, a spec the
// controller has not seen or an invalid one is Progressing or Degraded, and then the
// controller's own status.phase decides.
func rolloutHealth(u *unstructured.Unstructured) Health {
	if !observed(u) && str(u, "status", "observedGeneration") != fmt.Sprint(u.GetGeneration()) {
		return Health{Progressing, "Waiting for rollout spec update to be observed"}
	}
	if c, ok := condition(u, "InvalidSpec"); ok && c.status == "True" {
		return Health{Degraded, c.message}
	}
	if c, ok := condition(u, "Progressing"); ok && c.reason == "ProgressDeadlineExceeded" {
		return Health{Degraded, c.message}
	}
	if paused, _, _ := unstructured.NestedBool(u.Object, "spec", "paused"); paused {
		return Health{Suspended, "Rollout is paused"}
	}
	msg := str(u, "status", "message")
	switch str(u, "status", "phase") {
	case "Healthy":
		return Health{Healthy, msg}
	case "Paused":
		return Health{Suspended, msg}
	case "Degraded":
		return Health{Degraded, msg}
	case "Progressing", "":
		return Health{Progressing, msg}
	}
	return Health{Unknown, msg}
}
