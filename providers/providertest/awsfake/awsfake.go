// Package awsfake is a wire-level fake of AWS Secrets Manager (and SSM Parameter Store's
// GetParameters, and STS's AssumeRole and AssumeRoleWithWebIdentity) for tests and local
// trials: an HTTP server speaking the services' JSON 1.1 protocol (X-Amz-Target) and STS's
// query protocol to the unmodified official SDK. It verifies SigV4 signatures against known credentials, keeps version stages,
// returns the service's real error shapes, and can inject latency, throttling and failures
// per secret while counting calls.
package awsfake

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Test credentials the fake accepts.
const (
	AccessKeyID     = "AKIAKEYWAYTEST000001"
	SecretAccessKey = "keyway-test-secret-access-key"
	Region          = "us-east-1"
	Account         = "123456789012"
)

type version struct {
	id     string
	str    *string
	bin    []byte
	stages []string
}

type secret struct {
	name, arn string
	versions  []*version
	tags      map[string]string
}

// Fault changes how the fake answers for one secret.
type Fault struct {
	Latency   time.Duration
	Throttle  int    // answer ThrottlingException this many times first
	ErrorCode string // answer with this error every time (AccessDeniedException, DecryptionFailure, InternalServiceError, …)
}

// Server is the fake.
type Server struct {
	*httptest.Server

	mu        sync.Mutex
	params    map[string][]param // SSM parameters by name, version n at index n-1
	secrets   map[string]*secret // by name and by ARN
	faults    map[string]*Fault
	calls     map[string]int
	denyBatch bool
	// denyDescribe: DescribeSecret answers AccessDeniedException.
	denyDescribe bool
	latency      time.Duration
	seq          int

	verifier    WebIdentityVerifier
	trust       map[string]bool    // role ARN + "\x00" + principal
	sessions    map[string]session // issued access key ID → session
	byPrincipal map[string]int
}

// New starts a fake on a loopback port. Close it when done.
func New() *Server {
	f := &Server{secrets: map[string]*secret{}, params: map[string][]param{}, faults: map[string]*Fault{}, calls: map[string]int{},
		trust: map[string]bool{}, sessions: map[string]session{}, byPrincipal: map[string]int{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	return f
}

// Put stores a new version of a string secret, moving AWSCURRENT to it and AWSPREVIOUS to
// the one before. It returns the version id.
func (f *Server) Put(name, value string) string { return f.put(name, &value, nil) }

// PutBinary stores a new version of a binary secret.
func (f *Server) PutBinary(name string, value []byte) string { return f.put(name, nil, value) }

func (f *Server) put(name string, str *string, bin []byte) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.secrets[name]
	if !ok {
		f.seq++
		s = &secret{name: name, arn: fmt.Sprintf("arn:aws:secretsmanager:%s:%s:secret:%s-%06d", Region, Account, name, f.seq)}
		f.secrets[name] = s
		f.secrets[s.arn] = s
	}
	for _, v := range s.versions {
		v.stages = without(v.stages, "AWSPREVIOUS")
		if contains(v.stages, "AWSCURRENT") {
			v.stages = append(without(v.stages, "AWSCURRENT"), "AWSPREVIOUS")
		}
	}
	f.seq++
	id := fmt.Sprintf("%08x-0000-4000-8000-%012x", f.seq, f.seq)
	s.versions = append(s.versions, &version{id: id, str: str, bin: bin, stages: []string{"AWSCURRENT"}})
	return id
}

// ARN returns a stored secret's ARN.
func (f *Server) ARN(name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.secrets[name].arn
}

// SetFault installs a fault for a secret (by name), nil to clear it.
func (f *Server) SetFault(name string, fault *Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fault == nil {
		delete(f.faults, name)
		return
	}
	f.faults[name] = fault
}

// SetLatency adds latency to every call.
func (f *Server) SetLatency(d time.Duration) { f.mu.Lock(); f.latency = d; f.mu.Unlock() }

// DenyBatch makes BatchGetSecretValue answer AccessDeniedException, as for a policy
// without secretsmanager:BatchGetSecretValue.
func (f *Server) DenyBatch(deny bool) { f.mu.Lock(); f.denyBatch = deny; f.mu.Unlock() }

// DenyDescribe makes DescribeSecret answer AccessDeniedException, as for a policy with
// secretsmanager:GetSecretValue only.
func (f *Server) DenyDescribe(deny bool) { f.mu.Lock(); f.denyDescribe = deny; f.mu.Unlock() }

// Calls returns how many calls of an operation ("GetSecretValue", …) were answered,
// including rejected ones.
func (f *Server) Calls(op string) int { f.mu.Lock(); defer f.mu.Unlock(); return f.calls[op] }

// ResetCalls zeroes the counters.
func (f *Server) ResetCalls() { f.mu.Lock(); f.calls = map[string]int{}; f.mu.Unlock() }

type apiError struct {
	status int
	code   string
	msg    string
}

func (f *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeError(w, apiError{400, "SerializationException", "cannot read body"})
		return
	}
	target := r.Header.Get("X-Amz-Target")
	if target == "" && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		form, err := url.ParseQuery(string(body))
		if err != nil {
			stsError(w, 400, "MalformedInput", "malformed query")
			return
		}
		principal := ""
		if r.Header.Get("Authorization") != "" {
			p, e := f.verifySigV4(r, body, "sts")
			if e != nil {
				stsError(w, e.status, e.code, e.msg)
				return
			}
			principal = p
		}
		f.sts(w, form, principal)
		return
	}
	service := "secretsmanager"
	op, ok := strings.CutPrefix(target, "secretsmanager.")
	if !ok {
		op, ok = strings.CutPrefix(target, "AmazonSSM.")
		service = "ssm"
	}
	if r.Method != http.MethodPost || !ok {
		writeError(w, apiError{400, "UnknownOperationException", "unknown operation " + target})
		return
	}
	f.mu.Lock()
	f.calls[op]++
	latency := f.latency
	f.mu.Unlock()
	principal, authErr := f.verifySigV4(r, body, service)
	if authErr != nil {
		writeError(w, *authErr)
		return
	}
	f.mu.Lock()
	f.byPrincipal[principal]++
	f.mu.Unlock()
	if latency > 0 {
		time.Sleep(latency)
	}
	var in map[string]any
	if err := json.Unmarshal(body, &in); err != nil {
		writeError(w, apiError{400, "SerializationException", "malformed JSON"})
		return
	}
	var out any
	var e *apiError
	switch op {
	case "GetSecretValue":
		out, e = f.getSecretValue(in)
	case "BatchGetSecretValue":
		out, e = f.batchGet(in)
	case "DescribeSecret":
		out, e = f.describe(in)
	case "ListSecrets":
		out, e = f.list(in)
	case "GetParameters":
		out, e = f.getParameters(in)
	default:
		e = &apiError{400, "UnknownOperationException", "operation " + op + " is not implemented by the fake"}
	}
	if e != nil {
		writeError(w, *e)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_ = json.NewEncoder(w).Encode(out)
}

func writeError(w http.ResponseWriter, e apiError) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", e.code)
	w.WriteHeader(e.status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": e.code, "Message": e.msg})
}

var errNotFound = apiError{400, "ResourceNotFoundException", "Secrets Manager can't find the specified secret."}

// fault applies a secret's fault; the caller holds no lock.
func (f *Server) fault(name string) *apiError {
	f.mu.Lock()
	fl := f.faults[name]
	var latency time.Duration
	var e *apiError
	if fl != nil {
		latency = fl.Latency
		switch {
		case fl.Throttle > 0:
			fl.Throttle--
			e = &apiError{400, "ThrottlingException", "Rate exceeded"}
		case fl.ErrorCode != "":
			e = &apiError{400, fl.ErrorCode, "injected " + fl.ErrorCode}
			if fl.ErrorCode == "InternalServiceError" {
				e.status = 500
			}
		}
	}
	f.mu.Unlock()
	if latency > 0 {
		time.Sleep(latency)
	}
	return e
}

func (f *Server) lookup(id, versionID, stage string) (*secret, *version, *apiError) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.secrets[id]
	if !ok {
		return nil, nil, &errNotFound
	}
	if stage == "" && versionID == "" {
		stage = "AWSCURRENT"
	}
	for _, v := range s.versions {
		if (versionID == "" || v.id == versionID) && (stage == "" || contains(v.stages, stage)) {
			return s, v, nil
		}
	}
	return nil, nil, &apiError{400, "ResourceNotFoundException", "Secrets Manager can't find the specified secret value for staging label: " + stage}
}

func entry(s *secret, v *version) map[string]any {
	m := map[string]any{"ARN": s.arn, "Name": s.name, "VersionId": v.id, "VersionStages": v.stages, "CreatedDate": 1.7e9}
	if v.str != nil {
		m["SecretString"] = *v.str
	}
	if v.bin != nil {
		m["SecretBinary"] = v.bin // encoding/json writes base64, as the service does
	}
	return m
}

func (f *Server) getSecretValue(in map[string]any) (any, *apiError) {
	id, _ := in["SecretId"].(string)
	if id == "" {
		return nil, &apiError{400, "ValidationException", "1 validation error detected: Value null at 'secretId' failed to satisfy constraint"}
	}
	versionID, _ := in["VersionId"].(string)
	stage, _ := in["VersionStage"].(string)
	if e := f.fault(f.nameOf(id)); e != nil {
		return nil, e
	}
	s, v, e := f.lookup(id, versionID, stage)
	if e != nil {
		return nil, e
	}
	return entry(s, v), nil
}

func (f *Server) nameOf(id string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s, ok := f.secrets[id]; ok {
		return s.name
	}
	return id
}

func (f *Server) batchGet(in map[string]any) (any, *apiError) {
	f.mu.Lock()
	deny := f.denyBatch
	f.mu.Unlock()
	if deny {
		return nil, &apiError{400, "AccessDeniedException", "User is not authorized to perform: secretsmanager:BatchGetSecretValue"}
	}
	list, _ := in["SecretIdList"].([]any)
	if len(list) == 0 || len(list) > 20 {
		return nil, &apiError{400, "ValidationException", "SecretIdList must hold 1 to 20 ids"}
	}
	values := []any{}
	errs := []any{}
	for _, x := range list {
		id, _ := x.(string)
		if e := f.fault(f.nameOf(id)); e != nil {
			if e.code == "ThrottlingException" || e.status >= 500 {
				return nil, e // the whole call is throttled or fails
			}
			errs = append(errs, map[string]any{"SecretId": id, "ErrorCode": e.code, "Message": e.msg})
			continue
		}
		s, v, e := f.lookup(id, "", "")
		if e != nil {
			errs = append(errs, map[string]any{"SecretId": id, "ErrorCode": e.code, "Message": e.msg})
			continue
		}
		values = append(values, entry(s, v))
	}
	return map[string]any{"SecretValues": values, "Errors": errs}, nil
}

func (f *Server) describe(in map[string]any) (any, *apiError) {
	id, _ := in["SecretId"].(string)
	if e := f.fault(f.nameOf(id)); e != nil {
		return nil, e
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.denyDescribe {
		return nil, &apiError{400, "AccessDeniedException", "User is not authorized to perform: secretsmanager:DescribeSecret"}
	}
	s, ok := f.secrets[id]
	if !ok {
		return nil, &errNotFound
	}
	stages := map[string][]string{}
	for _, v := range s.versions {
		if len(v.stages) > 0 {
			stages[v.id] = v.stages
		}
	}
	return map[string]any{"ARN": s.arn, "Name": s.name, "VersionIdsToStages": stages}, nil
}

// Tag sets a tag on a secret (a Put must have made it).
func (f *Server) Tag(name, key, value string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.secrets[name]
	if s.tags == nil {
		s.tags = map[string]string{}
	}
	s.tags[key] = value
}

// list is ListSecrets with the service's filters — name (a prefix), tag-key, tag-value
// (each matched on its own, as the service does) — and pages of MaxResults (default 100)
// chained by NextToken.
func (f *Server) list(in map[string]any) (any, *apiError) {
	f.mu.Lock()
	defer f.mu.Unlock()
	type filter struct {
		Key    string
		Values []string
	}
	var req struct {
		Filters    []filter
		MaxResults int
		NextToken  string
	}
	raw, _ := json.Marshal(in)
	if err := json.Unmarshal(raw, &req); err != nil {
		return nil, &apiError{400, "InvalidParameterException", "malformed request"}
	}
	if req.MaxResults == 0 {
		req.MaxResults = 100
	}
	if req.MaxResults < 1 || req.MaxResults > 100 {
		return nil, &apiError{400, "InvalidParameterException", "MaxResults must be between 1 and 100"}
	}
	match := func(s *secret) bool {
		for _, fl := range req.Filters {
			ok := false
			for _, v := range fl.Values {
				switch fl.Key {
				case "name":
					ok = ok || strings.HasPrefix(s.name, v)
				case "tag-key":
					_, has := s.tags[v]
					ok = ok || has
				case "tag-value":
					for _, tv := range s.tags {
						ok = ok || tv == v
					}
				}
			}
			if !ok {
				return false
			}
		}
		return true
	}
	for _, fl := range req.Filters {
		switch fl.Key {
		case "name", "tag-key", "tag-value":
		default:
			return nil, &apiError{400, "InvalidParameterException", "Invalid filter key: " + fl.Key}
		}
	}
	var names []string
	for k, s := range f.secrets {
		if k == s.name && match(s) {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	start := 0
	if req.NextToken != "" {
		n, err := strconv.Atoi(req.NextToken)
		if err != nil || n < 0 || n > len(names) {
			return nil, &apiError{400, "InvalidNextTokenException", "The NextToken value is invalid."}
		}
		start = n
	}
	out := []any{}
	end := min(start+req.MaxResults, len(names))
	for _, n := range names[start:end] {
		s := f.secrets[n]
		tags := []any{}
		for k, v := range s.tags {
			tags = append(tags, map[string]string{"Key": k, "Value": v})
		}
		out = append(out, map[string]any{"ARN": s.arn, "Name": n, "Tags": tags})
	}
	resp := map[string]any{"SecretList": out}
	if end < len(names) {
		resp["NextToken"] = strconv.Itoa(end)
	}
	return resp, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func without(list []string, s string) []string {
	out := list[:0:0]
	for _, x := range list {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}
