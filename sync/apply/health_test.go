package apply

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

func TestHealthOf(t *testing.T) {
	for _, c := range []struct {
		name, obj string
		want      HealthStatus
	}{
		{"deployment rolled out", `{apiVersion: apps/v1, kind: Deployment, metadata: {generation: 2}, spec: {replicas: 2}, status: {observedGeneration: 2, replicas: 2, updatedReplicas: 2, availableReplicas: 2}}`, Healthy},
		{"deployment not observed", `{apiVersion: apps/v1, kind: Deployment, metadata: {generation: 3}, spec: {replicas: 2}, status: {observedGeneration: 2, replicas: 2, updatedReplicas: 2, availableReplicas: 2}}`, Progressing},
		{"deployment old replicas", `{apiVersion: apps/v1, kind: Deployment, metadata: {generation: 1}, spec: {replicas: 2}, status: {observedGeneration: 1, replicas: 3, updatedReplicas: 2, availableReplicas: 2}}`, Progressing},
		{"deployment deadline", `{apiVersion: apps/v1, kind: Deployment, metadata: {generation: 1}, status: {observedGeneration: 1, conditions: [{type: Progressing, status: "False", reason: ProgressDeadlineExceeded}]}}`, Degraded},
		{"deployment paused", `{apiVersion: apps/v1, kind: Deployment, spec: {paused: true}}`, Suspended},
		{"statefulset revision", `{apiVersion: apps/v1, kind: StatefulSet, metadata: {generation: 1}, spec: {replicas: 1}, status: {observedGeneration: 1, readyReplicas: 1, currentRevision: a, updateRevision: b}}`, Progressing},
		{"daemonset ok", `{apiVersion: apps/v1, kind: DaemonSet, metadata: {generation: 1}, status: {observedGeneration: 1, desiredNumberScheduled: 3, updatedNumberScheduled: 3, numberAvailable: 3}}`, Healthy},
		{"job complete", `{apiVersion: batch/v1, kind: Job, status: {conditions: [{type: Complete, status: "True"}]}}`, Healthy},
		{"job failed", `{apiVersion: batch/v1, kind: Job, status: {conditions: [{type: Failed, status: "True", message: BackoffLimitExceeded}]}}`, Degraded},
		{"job running", `{apiVersion: batch/v1, kind: Job, status: {active: 1}}`, Progressing},
		{"pod crashloop", `{apiVersion: v1, kind: Pod, status: {phase: Running, containerStatuses: [{state: {waiting: {reason: CrashLoopBackOff}}}]}}`, Degraded},
		{"pod ready", `{apiVersion: v1, kind: Pod, status: {phase: Running, conditions: [{type: Ready, status: "True"}]}}`, Healthy},
		{"pvc pending", `{apiVersion: v1, kind: PersistentVolumeClaim, status: {phase: Pending}}`, Progressing},
		{"lb service waiting", `{apiVersion: v1, kind: Service, spec: {type: LoadBalancer}}`, Progressing},
		{"clusterip service", `{apiVersion: v1, kind: Service, spec: {type: ClusterIP}}`, Healthy},
		{"ingress with address", `{apiVersion: networking.k8s.io/v1, kind: Ingress, status: {loadBalancer: {ingress: [{ip: 10.0.0.1}]}}}`, Healthy},
		{"hpa failing metrics", `{apiVersion: autoscaling/v2, kind: HorizontalPodAutoscaler, status: {conditions: [{type: ScalingActive, status: "False", reason: FailedGetResourceMetric}]}}`, Degraded},
		{"hpa active", `{apiVersion: autoscaling/v2, kind: HorizontalPodAutoscaler, status: {conditions: [{type: AbleToScale, status: "True"}, {type: ScalingActive, status: "True"}]}}`, Healthy},
		{"apiservice unavailable", `{apiVersion: apiregistration.k8s.io/v1, kind: APIService, status: {conditions: [{type: Available, status: "False", reason: MissingEndpoints}]}}`, Progressing},
		{"rollout paused canary", `{apiVersion: argoproj.io/v1alpha1, kind: Rollout, metadata: {generation: 1}, status: {observedGeneration: "1", phase: Paused}}`, Suspended},
		{"rollout healthy", `{apiVersion: argoproj.io/v1alpha1, kind: Rollout, metadata: {generation: 4}, status: {observedGeneration: "4", phase: Healthy}}`, Healthy},
		{"rollout invalid", `{apiVersion: argoproj.io/v1alpha1, kind: Rollout, metadata: {generation: 1}, status: {observedGeneration: "1", conditions: [{type: InvalidSpec, status: "True"}]}}`, Degraded},
		{"externalsecret not ready", `{apiVersion: external-secrets.io/v1, kind: ExternalSecret, status: {conditions: [{type: Ready, status: "False", reason: SecretSyncedError}]}}`, Degraded},
		{"externalsecret ready", `{apiVersion: external-secrets.io/v1, kind: ExternalSecret, status: {conditions: [{type: Ready, status: "True"}]}}`, Healthy},
		{"configmap", `{apiVersion: v1, kind: ConfigMap, metadata: {name: c}}`, Healthy},
		{"crd not established", `{apiVersion: apiextensions.k8s.io/v1, kind: CustomResourceDefinition, metadata: {name: ws.example.com}, spec: {group: example.com}, status: {conditions: [{type: Established, status: "False", reason: Installing}]}}`, Progressing},
	} {
		// Through JSON, as objects come from the API server: integers stay int64.
		j, err := yaml.YAMLToJSON([]byte(c.obj))
		if err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(j); err != nil {
			t.Fatal(err)
		}
		if got := HealthOf(u); got.Status != c.want {
			t.Errorf("%s: %s (%s), want %s", c.name, got.Status, got.Message, c.want)
		}
	}
}
