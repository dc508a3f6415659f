package apps

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"hash"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keyway-dev/keyway/internal/gitsource"
)

// maxWebhookBody bounds a push event's body.
const maxWebhookBody = 4 << 20

// push is what a push event says: the repository's URLs and the branch or tag pushed.
type push struct {
	urls []string
	refs []string // branch or tag names
}

// WebhookSecrets are the webhook's secrets, one per way of proving them: a secret sent in
// the clear (GitLab's token, Bitbucket Cloud's hook UUID) is never also the key of a
// signature, so whoever sees one header learns nothing of another mode. A mode without a
// secret is refused.
type WebhookSecrets struct {
	HMAC          []byte // GitHub and Bitbucket Server signatures
	GitLabToken   []byte // X-Gitlab-Token
	BitbucketUUID []byte // X-Hook-UUID
}

// replayWindow is how long a delivered event is remembered: the same event again within
// it is refused. maxRemembered bounds the memory that takes.
const (
	replayWindow  = time.Hour
	maxRemembered = 10_000
)

// Webhook returns the handler for GitHub, GitLab and Bitbucket push events (POST
// /api/webhook, as Argo CD serves it). Every request must prove it knows its mode's secret:
// GitHub's and Bitbucket Server's HMAC-SHA256 (or GitHub's SHA-1) signature, GitLab's
// token, or Bitbucket Cloud's hook UUID; compared in constant time. An event delivered
// again (the same body and proof) within replayWindow is refused. The applications whose
// repository and revision the push names are synced at once.
func (d *Daemon) Webhook(secrets WebhookSecrets) http.Handler {
	var mu sync.Mutex
	seen := map[[sha256.Size]byte]time.Time{}
	replayed := func(r *http.Request, body []byte) bool {
		h := sha256.New()
		for _, k := range []string{"X-Hub-Signature-256", "X-Hub-Signature", "X-Gitlab-Token", "X-Hook-UUID"} {
			h.Write([]byte(r.Header.Get(k) + "\x00"))
		}
		h.Write(body)
		var key [sha256.Size]byte
		copy(key[:], h.Sum(nil))
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		if t, ok := seen[key]; ok && now.Sub(t) < replayWindow {
			return true
		}
		if len(seen) >= maxRemembered {
			for k, t := range seen {
				if now.Sub(t) >= replayWindow {
					delete(seen, k)
				}
			}
			for k := range seen { // still full: forget the oldest-enough at random
				if len(seen) < maxRemembered {
					break
				}
				delete(seen, k)
			}
		}
		seen[key] = now
		return false
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST a push event", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxWebhookBody+1))
		if err != nil || len(body) > maxWebhookBody {
			http.Error(w, "body too large or unreadable", http.StatusRequestEntityTooLarge)
			return
		}
		if !verified(r, body, secrets) {
			d.m.webhooks.WithLabelValues("refused").Inc()
			http.Error(w, "signature or token missing or wrong", http.StatusUnauthorized)
			return
		}
		if replayed(r, body) {
			d.m.webhooks.WithLabelValues("replayed").Inc()
			http.Error(w, "this event was delivered already", http.StatusConflict)
			return
		}
		p, ok := parsePush(r, body)
		if !ok {
			d.m.webhooks.WithLabelValues("ignored").Inc()
			w.WriteHeader(http.StatusAccepted) // a ping or an event other than push
			return
		}
		names := d.matching(p)
		d.m.webhooks.WithLabelValues("accepted").Inc()
		for _, n := range names {
			select {
			case d.refresh <- n:
			default: // the queue is full: the next poll covers it
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"refreshing": names})
	})
}

// verified checks the request's proof of its mode's secret.
func verified(r *http.Request, body []byte, secrets WebhookSecrets) bool {
	mac := func(h func() hash.Hash) string {
		m := hmac.New(h, secrets.HMAC)
		m.Write(body)
		return hex.EncodeToString(m.Sum(nil))
	}
	eq := func(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
	hmacOK := len(secrets.HMAC) > 0
	switch {
	case r.Header.Get("X-Hub-Signature-256") != "":
		return hmacOK && eq(r.Header.Get("X-Hub-Signature-256"), "sha256="+mac(sha256.New))
	case r.Header.Get("X-Hub-Signature") != "" && r.Header.Get("X-Event-Key") != "":
		return hmacOK && eq(r.Header.Get("X-Hub-Signature"), "sha256="+mac(sha256.New)) // Bitbucket Server
	case r.Header.Get("X-Hub-Signature") != "":
		return hmacOK && eq(r.Header.Get("X-Hub-Signature"), "sha1="+mac(sha1.New))
	case r.Header.Get("X-Gitlab-Token") != "":
		return len(secrets.GitLabToken) > 0 && eq(r.Header.Get("X-Gitlab-Token"), string(secrets.GitLabToken))
	case r.Header.Get("X-Hook-UUID") != "":
		return len(secrets.BitbucketUUID) > 0 && eq(strings.Trim(r.Header.Get("X-Hook-UUID"), "{}"), strings.Trim(strings.TrimSpace(string(secrets.BitbucketUUID)), "{}"))
	}
	return false
}

// parsePush reads a push event of any of the three providers.
func parsePush(r *http.Request, body []byte) (push, bool) {
	var ev struct {
		Ref        string `json:"ref"`
		Repository struct {
			HTMLURL  string `json:"html_url"`
			CloneURL string `json:"clone_url"`
			SSHURL   string `json:"ssh_url"`
			Links    struct {
				HTML  struct{ Href string } `json:"html"`
				Clone []struct{ Href string }
			} `json:"links"`
		} `json:"repository"`
		Project struct {
			HTTP string `json:"git_http_url"`
			SSH  string `json:"git_ssh_url"`
			Web  string `json:"web_url"`
		} `json:"project"`
		Push struct {
			Changes []struct {
				New struct{ Name string } `json:"new"`
			} `json:"changes"`
		} `json:"push"`
		Changes []struct {
			Ref struct {
				DisplayID string `json:"displayId"`
			} `json:"ref"`
		} `json:"changes"`
	}
	if json.Unmarshal(body, &ev) != nil {
		return push{}, false
	}
	switch {
	case r.Header.Get("X-GitHub-Event") != "" && r.Header.Get("X-GitHub-Event") != "push",
		r.Header.Get("X-Gitlab-Event") != "" && r.Header.Get("X-Gitlab-Event") != "Push Hook" && r.Header.Get("X-Gitlab-Event") != "Tag Push Hook",
		r.Header.Get("X-Event-Key") != "" && !strings.HasPrefix(r.Header.Get("X-Event-Key"), "repo:push") && r.Header.Get("X-Event-Key") != "repo:refs_changed":
		return push{}, false
	}
	var p push
	for _, u := range []string{ev.Repository.HTMLURL, ev.Repository.CloneURL, ev.Repository.SSHURL, ev.Repository.Links.HTML.Href, ev.Project.HTTP, ev.Project.SSH, ev.Project.Web} {
		if u != "" {
			p.urls = append(p.urls, u)
		}
	}
	for _, c := range ev.Repository.Links.Clone {
		p.urls = append(p.urls, c.Href)
	}
	if ev.Ref != "" {
		p.refs = append(p.refs, strings.TrimPrefix(strings.TrimPrefix(ev.Ref, "refs/heads/"), "refs/tags/"))
	}
	for _, c := range ev.Push.Changes {
		p.refs = append(p.refs, c.New.Name)
	}
	for _, c := range ev.Changes {
		p.refs = append(p.refs, c.Ref.DisplayID)
	}
	return p, len(p.urls) > 0
}

// matching lists the applications the push concerns: same repository (as Argo CD
// compares URLs) and a revision that is the pushed branch or tag, or HEAD.
func (d *Daemon) matching(p push) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for name, e := range d.apps {
		src := e.app.Spec.Source
		if src == nil {
			continue
		}
		repoOK := false
		for _, u := range p.urls {
			repoOK = repoOK || sameRepo(u, src.RepoURL)
		}
		if !repoOK {
			continue
		}
		rev := strings.TrimPrefix(strings.TrimPrefix(src.TargetRevision, "refs/heads/"), "refs/tags/")
		revOK := rev == "" || rev == "HEAD" || len(p.refs) == 0
		for _, r := range p.refs {
			revOK = revOK || r == rev
		}
		if revOK {
			out = append(out, name)
		}
	}
	// An application whose parent also matched syncs within its parent's sync: once.
	matched := map[string]bool{}
	for _, n := range out {
		matched[n] = true
	}
	kept := out[:0]
	for _, n := range out {
		covered := false
		for p, i := d.apps[n].parent, 0; p != "" && i < 100 && !covered; i++ {
			covered = matched[p]
			e, ok := d.apps[p]
			if !ok {
				break
			}
			p = e.parent
		}
		if !covered {
			kept = append(kept, n)
		}
	}
	slices.Sort(kept)
	return kept
}

// sameRepo compares repository URLs across https and ssh forms: host and path, lower case,
// without .git.
func sameRepo(a, b string) bool {
	key := func(u string) string {
		u = gitsource.NormalizeURL(u)
		scheme := false
		if i := strings.Index(u, "://"); i >= 0 {
			u, scheme = u[i+3:], true
		}
		if at := strings.LastIndex(u, "@"); at >= 0 {
			u = u[at+1:]
		}
		host, path, _ := strings.Cut(u, "/")
		if !scheme { // scp-like git@host:org/repo
			if h, p, ok := strings.Cut(u, ":"); ok {
				host, path = h, p
			}
		}
		if h, _, ok := strings.Cut(host, ":"); ok { // a port
			host = h
		}
		return host + "/" + path
	}
	return key(a) == key(b)
}
