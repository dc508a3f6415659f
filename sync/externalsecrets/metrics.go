package externalsecrets

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// readyCollector reports ExternalSecrets by their Ready condition's status, counted from the
// informer's cache at each scrape.
type readyCollector struct{ s *Syncer }

var (
	readyDesc   = prometheus.NewDesc("keyway_syncer_externalsecrets", "ExternalSecrets by Ready status (True, False, Unknown: not synced yet).", []string{"ready"}, nil)
	overdueDesc = prometheus.NewDesc("keyway_syncer_externalsecrets_overdue", "ExternalSecrets whose last refresh is older than twice their refreshInterval (and a minute).", nil, nil)
)

func (c readyCollector) Describe(ch chan<- *prometheus.Desc) { ch <- readyDesc; ch <- overdueDesc }

func (c readyCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[string]float64{"True": 0, "False": 0, "Unknown": 0}
	var items []any
	if c.s.esInf != nil {
		items = c.s.esInf.GetStore().List()
	}
	overdue, now := 0.0, time.Now()
	for _, item := range items {
		if _, late := overdueSince(item.(*unstructured.Unstructured), now); late {
			overdue++
		}
		status := "Unknown"
		conds, _, _ := unstructured.NestedSlice(item.(*unstructured.Unstructured).Object, "status", "conditions")
		for _, cond := range conds {
			if m, ok := cond.(map[string]any); ok && m["type"] == "Ready" {
				if v, _ := m["status"].(string); v == "True" || v == "False" {
					status = v
				}
			}
		}
		counts[status]++
	}
	for status, n := range counts {
		ch <- prometheus.MustNewConstMetric(readyDesc, prometheus.GaugeValue, n, status)
	}
	ch <- prometheus.MustNewConstMetric(overdueDesc, prometheus.GaugeValue, overdue)
}
