package testenv

import (
	"bufio"
	"encoding/json"
	"os"
	"strings"
	"time"
)

// Request is one API request as the API server's audit log recorded it.
type Request struct {
	Verb      string
	URI       string // the request's path and query
	UserAgent string
	Resource  string // resource[/subresource]
	Namespace string
	Name      string
	Code      int
	Time      time.Time
	DryRun    bool // ?dryRun=All: checked, never stored
}

// IsWrite reports whether the request could change something (a dry run cannot).
func (r Request) IsWrite() bool {
	if r.DryRun {
		return false
	}
	switch r.Verb {
	case "get", "list", "watch":
		return false
	}
	return true
}

// Requests reads the audit log: every completed request since since whose user agent starts
// with agent ("" for all).
func (e *Env) Requests(since time.Time, agent string) ([]Request, error) {
	f, err := os.Open(e.AuditLog)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Request
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var ev struct {
			Stage     string `json:"stage"`
			Verb      string `json:"verb"`
			URI       string `json:"requestURI"`
			UserAgent string `json:"userAgent"`
			ObjectRef struct {
				Resource, Subresource, Namespace, Name string
			} `json:"objectRef"`
			ResponseStatus struct {
				Code int `json:"code"`
			} `json:"responseStatus"`
			StageTimestamp time.Time `json:"stageTimestamp"`
		}
		if json.Unmarshal(sc.Bytes(), &ev) != nil || ev.Stage != "ResponseComplete" || ev.StageTimestamp.Before(since) || !strings.HasPrefix(ev.UserAgent, agent) {
			continue
		}
		res := ev.ObjectRef.Resource
		if ev.ObjectRef.Subresource != "" {
			res += "/" + ev.ObjectRef.Subresource
		}
		out = append(out, Request{Verb: ev.Verb, URI: ev.URI, UserAgent: ev.UserAgent, Resource: res, Namespace: ev.ObjectRef.Namespace, Name: ev.ObjectRef.Name, Code: ev.ResponseStatus.Code, Time: ev.StageTimestamp,
			DryRun: strings.Contains(ev.URI, "dryRun=All")})
	}
	return out, sc.Err()
}
