package kube

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestPagedListWatch: the informer's "any version" first list becomes a consistent, paged
// one; each page comes back as the transform's entries, and the decoded page is let go —
// an entry that is the item itself gets a copy of its own rather than a pointer into it.
func TestPagedListWatch(t *testing.T) {
	var asked []metav1.ListOptions
	var page []corev1.Secret
	list := func(_ context.Context, opts metav1.ListOptions) ([]corev1.Secret, metav1.ListMeta, error) {
		asked = append(asked, opts)
		page = []corev1.Secret{
			{ObjectMeta: metav1.ObjectMeta{Name: "a"}, Data: map[string][]byte{"k": []byte("CANARY")}},
			{ObjectMeta: metav1.ObjectMeta{Name: "b"}},
		}
		return page, metav1.ListMeta{ResourceVersion: "7", Continue: "next"}, nil
	}
	trim := func(obj any) (any, error) {
		s := obj.(*corev1.Secret)
		if s.Name == "a" {
			return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "a-entry"}}, nil
		}
		s.Labels = map[string]string{"trimmed": "yes"}
		return s, nil // the item itself
	}
	lw := pagedListWatch(list, nil, trim)
	got, err := lw.ListWithContext(context.Background(), metav1.ListOptions{ResourceVersion: "0", Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	if asked[0].ResourceVersion != "" || asked[0].Limit != 500 {
		t.Fatalf("asked %+v, want a consistent list of pages of 500", asked[0])
	}
	items, err := meta.ExtractList(got)
	if err != nil || len(items) != 2 {
		t.Fatalf("ExtractList: %v %d", err, len(items))
	}
	lm, _ := meta.ListAccessor(got)
	if lm.GetResourceVersion() != "7" || lm.GetContinue() != "next" {
		t.Fatalf("list meta lost: %q %q", lm.GetResourceVersion(), lm.GetContinue())
	}
	if items[0].(*corev1.Secret).Name != "a-entry" || items[1].(*corev1.Secret).Labels["trimmed"] != "yes" || items[1].(*corev1.Secret).Name != "b" {
		t.Fatalf("entries: %+v", items)
	}
	if page[0].Name != "" || page[0].Data != nil || page[1].Name != "" {
		t.Fatal("the decoded page was kept")
	}
	if items[1] == any(&page[1]) {
		t.Fatal("an entry points into the page")
	}
	// A re-list from a known version is a fresh one too (TestInformerAfterAPIServerRestart);
	// a later page keeps its continue token.
	if _, err := lw.ListWithContext(context.Background(), metav1.ListOptions{ResourceVersion: "42", ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan, Limit: 500}); err != nil || asked[1].ResourceVersion != "" || asked[1].ResourceVersionMatch != "" {
		t.Fatalf("relist asked %+v: %v", asked[1], err)
	}
	if _, err := lw.ListWithContext(context.Background(), metav1.ListOptions{Continue: "next", Limit: 500}); err != nil || asked[2].Continue != "next" {
		t.Fatalf("next page asked %+v: %v", asked[2], err)
	}
	if c, ok := got.DeepCopyObject().(*Page); !ok || len(c.Items) != 2 || c.Items[0] == items[0] {
		t.Fatal("DeepCopyObject does not copy the entries")
	}
}
