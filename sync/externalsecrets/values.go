package externalsecrets

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/keyway-dev/keyway/internal/tmplfuncs"
	"github.com/keyway-dev/keyway/providers"
	"github.com/keyway-dev/keyway/providers/vault"
	esv1 "github.com/keyway-dev/keyway/sync/api/externalsecrets/v1"
)

// convertKey applies a conversion strategy to a key found by extract or find, as ESO
// does: a character that is not a letter, a digit, '-', '.' or '_' becomes '_' (Default,
// also when unset) or _Uxxxx_, its code point in four lower-case hex digits (Unicode).
func convertKey(k string, strategy esv1.ExternalSecretConversionStrategy) string {
	var b strings.Builder
	for _, r := range k {
		switch {
		case unicode.IsLetter(r), unicode.IsNumber(r), r == '-', r == '.', r == '_':
			b.WriteRune(r)
		case strategy == "Unicode":
			fmt.Fprintf(&b, "_U%04x_", r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// addConverted puts v under k converted, refusing two keys that convert to the same one
// (ESO's collision error).
func addConverted(out map[string][]byte, k string, strategy esv1.ExternalSecretConversionStrategy, v []byte) error {
	key := convertKey(k, strategy)
	if _, dup := out[key]; dup {
		return fmt.Errorf("secret name collision during conversion: %s", key)
	}
	out[key] = v
	return nil
}

// fetch reads one secret through the store's principal, sharing the read with every
// ExternalSecret that asks for the same secret: a read made at or after notBefore (the
// start of the asker's refresh window, or the moment a force-sync was seen) or one in
// flight serves everyone (single flight).
func (s *Syncer) fetch(ctx context.Context, st *storeConfig, ref providers.Ref, notBefore time.Time) (providers.Secret, error) {
	if st.backend == "fake" {
		v, ok := st.fake[ref.Path+"\x00"+ref.Version]
		if !ok {
			return providers.Secret{}, fmt.Errorf("%w: key %q", providers.ErrNotFound, ref.Path)
		}
		var m map[string]any
		if json.Unmarshal([]byte(v), &m) != nil {
			m = map[string]any{"value": v}
		}
		return providers.Secret{Data: m, Whole: v}, nil
	}
	principal := s.pool.Principal(st.backend, st.settings)
	key := principal + "\x00" + ref.String()
	// A repair may be served the last good read of a secret whose latest read failed because
	// the backend was unavailable (not because the secret is gone: that is an answer).
	fb, repair := ctx.Value(fallbackKey{}).(*bool)
	fallback := func(e *fetchEntry) bool {
		return repair && errors.Is(e.err, providers.ErrUnavailable) && !e.goodAt.IsZero() && !e.goodAt.Before(notBefore)
	}
	s.cacheMu.Lock()
	e, ok := s.fetched[key]
	if ok {
		select {
		case <-e.done:
			if fallback(e) {
				e.note(time.Now(), notBefore)
				*fb = true
				s.cacheMu.Unlock()
				s.hits.Inc()
				return e.good, nil
			}
			if e.err != nil || e.at.Before(notBefore) {
				ok = false // stale or failed: read again
			}
		default: // a read in flight: share it
		}
	}
	if !ok {
		prev := e
		e = &fetchEntry{done: make(chan struct{})}
		if prev != nil {
			e.good, e.goodAt = prev.good, prev.goodAt
		}
		s.fetched[key] = e
	}
	e.note(time.Now(), notBefore)
	if !ok {
		s.cacheMu.Unlock()
		if e.err = s.iso.open(principal, time.Now()); e.err == nil {
			if e.err = st.wait(ctx); e.err == nil {
				clients := s.pool.Clients(map[string]providers.Settings{st.backend: st.settings})
				e.secret, e.err = clients.Fetch(ctx, ref)
				clients.Close()
				s.iso.note(principal, e.err, time.Now())
			}
		}
		e.at = time.Now()
		outcome := "ok"
		if e.err != nil {
			outcome = "error"
		} else {
			e.good, e.goodAt = e.secret, e.at
		}
		s.reads.WithLabelValues(st.backend, "get", outcome).Inc()
		close(e.done)
	} else {
		s.cacheMu.Unlock()
		s.hits.Inc()
		select {
		case <-e.done:
		case <-ctx.Done():
			return providers.Secret{}, ctx.Err()
		}
	}
	if fallback(e) { // the read this repair made or shared failed: the last good one
		*fb = true
		return e.good, nil
	}
	return e.secret, e.err
}

// fallbackKey marks a repair's context (a sync that is not a refresh, of an ExternalSecret
// whose last refresh succeeded): fetch may serve it the last good read of a secret whose
// latest read failed, and sets the flag it points to when it does.
type fallbackKey struct{}

// values reads everything the ExternalSecret asks for: data[] by key, dataFrom[].extract as
// whole secrets, renamed by rewrite.
//
// With deletionPolicy Delete or Merge, a remote secret that no longer exists is not an
// error: its keys are left out, and gone reports how many sources were missing.
func (s *Syncer) values(ctx context.Context, st *storeConfig, es *esv1.ExternalSecret, notBefore time.Time) (out map[string][]byte, gone int, err error) {
	out = map[string][]byte{}
	tolerate := es.Spec.Target.DeletionPolicy == esv1.DeletionPolicyDelete || es.Spec.Target.DeletionPolicy == esv1.DeletionPolicyMerge
	for i, d := range es.Spec.Data {
		if err := metadataPolicy(st, fmt.Sprintf("data[%d].remoteRef", i), d.RemoteRef); err != nil {
			return nil, 0, err
		}
	}
	for i, df := range es.Spec.DataFrom {
		if df.Extract != nil {
			if err := metadataPolicy(st, fmt.Sprintf("dataFrom[%d].extract", i), *df.Extract); err != nil {
				return nil, 0, err
			}
		}
	}
	ref := func(r esv1.ExternalSecretDataRemoteRef) providers.Ref {
		path := r.Key
		if st.backend == "vault" && !strings.HasPrefix(path, st.mount+"/") {
			path = st.mount + "/" + strings.TrimPrefix(path, "/")
		}
		if st.backend == "gcpsm" && !strings.HasPrefix(path, "projects/") {
			loc := ""
			if st.location != "" {
				loc = "/locations/" + st.location
			}
			path = "projects/" + st.project + loc + "/secrets/" + path
		}
		out := providers.Ref{Backend: st.backend, Path: path, Version: r.Version}
		if r.MetadataPolicy == "Fetch" {
			out.Params = url.Values{vault.ParamMetadata: {"custom"}}.Encode()
		}
		return out
	}
	for i, d := range es.Spec.Data {
		sec, err := s.fetch(ctx, st, ref(d.RemoteRef), notBefore)
		if tolerate && errors.Is(err, providers.ErrNotFound) {
			gone++
			continue
		}
		if err != nil {
			return nil, 0, fmt.Errorf("data[%d] (%s): %w", i, d.SecretKey, err)
		}
		v, err := property(sec, d.RemoteRef.Property)
		if err != nil {
			return nil, 0, fmt.Errorf("data[%d] (%s): %w", i, d.SecretKey, err)
		}
		if v, err = decode(v, d.RemoteRef.DecodingStrategy); err != nil {
			return nil, 0, fmt.Errorf("data[%d] (%s): %w", i, d.SecretKey, err)
		}
		out[d.SecretKey] = v
	}
	fromData := maps.Clone(out)
	for i, df := range es.Spec.DataFrom {
		var found map[string][]byte
		switch {
		case df.Find != nil:
			found, err = s.find(ctx, st, df.Find, notBefore)
			if err != nil {
				return nil, 0, fmt.Errorf("dataFrom[%d].find: %w", i, err)
			}
		case df.Extract != nil:
			sec, err := s.fetch(ctx, st, ref(*df.Extract), notBefore)
			if tolerate && errors.Is(err, providers.ErrNotFound) {
				gone++
				continue
			}
			if err != nil {
				return nil, 0, fmt.Errorf("dataFrom[%d]: %w", i, err)
			}
			data := sec.Data
			if p := df.Extract.Property; p != "" {
				// The keys of the JSON object at property, as ESO extracts them.
				raw, err := property(sec, p)
				if err != nil {
					return nil, 0, fmt.Errorf("dataFrom[%d]: extract property %q: %v", i, p, err)
				}
				data = nil
				if json.Unmarshal(raw, &data) != nil || data == nil {
					return nil, 0, fmt.Errorf("dataFrom[%d]: extract property %q is not a JSON object", i, p)
				}
			}
			found = map[string][]byte{}
			for k, raw := range data {
				v, err := decode(stringify(raw), df.Extract.DecodingStrategy)
				if err != nil {
					return nil, 0, fmt.Errorf("dataFrom[%d] key %q: %w", i, k, err)
				}
				if err := addConverted(found, k, df.Extract.ConversionStrategy, v); err != nil {
					return nil, 0, fmt.Errorf("dataFrom[%d]: %w", i, err)
				}
			}
		default:
			return nil, 0, refusal{fmt.Sprintf("dataFrom[%d]: needs extract or find", i)}
		}
		found, err := rewrite(ctx, fmt.Sprintf("dataFrom[%d].rewrite", i), df.Rewrite, found)
		if err != nil {
			return nil, 0, err
		}
		for k, v := range found {
			if _, byData := fromData[k]; !byData {
				out[k] = v // data[] wins over dataFrom, as in ESO
			}
		}
	}
	return out, gone, nil
}

// maxFound bounds the secrets one dataFrom.find may select.
const maxFound = 500

// find is ESO's dataFrom.find: every secret under find.path (for Vault, relative to the
// store's mount; for Secrets Manager, a name prefix) whose name matches find.name.regexp and
// which carries every find.tags pair (Secrets Manager), each as one key — its name with '/'
// turned into '_' (ESO's Default conversion). A Vault secret's value is its data as JSON, a
// Secrets Manager secret's its string. Each secret is read through the shared read cache,
// like data[].
func (s *Syncer) find(ctx context.Context, st *storeConfig, f *esv1.ExternalSecretFind, notBefore time.Time) (map[string][]byte, error) {
	var root, strip string
	switch st.backend {
	case "vault":
		if len(f.Tags) > 0 {
			return nil, refusal{"find.tags: Vault secrets are found by path and name only"}
		}
		root, strip = st.mount, st.mount+"/"
		if f.Path != nil && strings.Trim(*f.Path, "/") != "" {
			root = st.mount + "/" + strings.Trim(*f.Path, "/")
		}
	case "awssm":
		if f.Path != nil {
			root = *f.Path
		}
	default:
		return nil, refusal{"find is supported for the vault provider and aws SecretsManager"}
	}
	var re *regexp.Regexp
	if f.Name != nil && f.Name.RegExp != "" {
		var err error
		if re, err = regexp.Compile(f.Name.RegExp); err != nil {
			return nil, refusal{fmt.Sprintf("find.name.regexp: %v", err)}
		}
	}
	principal := s.pool.Principal(st.backend, st.settings)
	if err := s.iso.open(principal, time.Now()); err != nil {
		return nil, err
	}
	if err := st.wait(ctx); err != nil {
		return nil, err
	}
	clients := s.pool.Clients(map[string]providers.Settings{st.backend: st.settings})
	names, err := clients.Find(ctx, st.backend, root, f.Tags, maxFound)
	clients.Close()
	s.iso.note(principal, err, time.Now())
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	s.reads.WithLabelValues(st.backend, "list", outcome).Inc()
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for _, p := range names {
		rel := strings.TrimPrefix(p, strip)
		if re != nil && !re.MatchString(rel) {
			continue
		}
		sec, err := s.fetch(ctx, st, providers.Ref{Backend: st.backend, Path: p}, notBefore)
		if err != nil {
			return nil, err
		}
		var raw []byte
		if st.backend == "vault" {
			raw, err = json.Marshal(sec.Data) // a path's key/value pairs, as ESO gives them
		} else {
			raw, err = property(sec, "") // the secret's string
		}
		if err != nil {
			return nil, fmt.Errorf("secret %q: %v", rel, err)
		}
		v, err := decode(raw, f.DecodingStrategy)
		if err != nil {
			return nil, fmt.Errorf("secret %q: %w", rel, err)
		}
		if err := addConverted(out, strings.ReplaceAll(rel, "/", "_"), f.ConversionStrategy, v); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// property selects a value of a secret: the whole secret (as JSON when structured) without
// one, a key (an exact key first, dots and all), or a dotted path into nested JSON.
func property(sec providers.Secret, prop string) ([]byte, error) {
	if prop == "" {
		if sec.Whole != nil {
			return stringify(sec.Whole), nil
		}
		return json.Marshal(sec.Data)
	}
	if v, ok := sec.Data[prop]; ok {
		return stringify(v), nil // an exact key wins over a path, as in ESO ("a.b")
	}
	var cur any = sec.Data
	for part := range strings.SplitSeq(prop, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("property %q: not an object at %q", prop, part)
		}
		if cur, ok = m[part]; !ok {
			return nil, fmt.Errorf("%w: property %q", providers.ErrNotFound, prop)
		}
	}
	return stringify(cur), nil
}

// stringify is a value's bytes as ESO gives them: strings as they are, numbers in plain
// decimal (never an exponent), booleans as true/false, null as nothing, objects and
// arrays as JSON.
func stringify(v any) []byte {
	switch t := v.(type) {
	case string:
		return []byte(t)
	case []byte:
		return t
	case nil:
		return nil
	case float64:
		return []byte(strconv.FormatFloat(t, 'f', -1, 64))
	case json.Number:
		return []byte(t.String())
	case bool:
		return []byte(strconv.FormatBool(t))
	}
	b, _ := json.Marshal(v)
	return b
}

func decode(v []byte, strategy esv1.ExternalSecretDecodingStrategy) ([]byte, error) {
	switch strategy {
	case "", "None":
		return v, nil
	case "Base64":
		return base64.StdEncoding.DecodeString(string(v))
	case "Base64URL":
		return base64.URLEncoding.DecodeString(string(v))
	case "Auto":
		// As ESO: padded base64, then padded base64url, else the value as it is (so
		// "secret" or "admin1", which only unpadded base64 would take, stay text).
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
			if d, err := enc.DecodeString(string(v)); err == nil {
				return d, nil
			}
		}
		return v, nil
	}
	return nil, refusal{fmt.Sprintf("decodingStrategy %q is not Auto, Base64, Base64URL or None", strategy)}
}

// rewrite applies a dataFrom entry's rewrites in order, each to every key, as ESO does: a
// regexp replaces matches in the key; a transform renders its template with .value the
// key (under the template budget). Merge rewrites are refused.
func rewrite(ctx context.Context, where string, rws []esv1.ExternalSecretRewrite, in map[string][]byte) (map[string][]byte, error) {
	for j, rw := range rws {
		out := make(map[string][]byte, len(in))
		switch {
		case rw.Regexp != nil:
			re, err := regexp.Compile(rw.Regexp.Source)
			if err != nil {
				return nil, refusal{fmt.Sprintf("%s[%d].regexp: %v", where, j, err)}
			}
			for k, v := range in {
				out[re.ReplaceAllString(k, rw.Regexp.Target)] = v
			}
		case rw.Transform != nil:
			budget := tmplfuncs.NewBudget(ctx, tmplfuncs.DefaultLimits())
			tpl, err := budget.Parse(fmt.Sprintf("%s[%d].transform", where, j), rw.Transform.Template, "")
			if err != nil {
				return nil, refusal{fmt.Sprintf("%s[%d].transform: %v", where, j, err)}
			}
			for k, v := range in {
				// The template sees key names only, never values: its errors may be quoted.
				key, err := tpl.Execute(map[string]string{"value": k})
				if err != nil {
					return nil, refusal{fmt.Sprintf("%s[%d].transform: %v", where, j, err)}
				}
				out[key] = v
			}
		default:
			return nil, refusal{fmt.Sprintf("%s[%d]: only regexp and transform rewrites are supported", where, j)}
		}
		in = out
	}
	return in, nil
}

// metadataPolicy allows Fetch for Vault stores (KV v2's custom_metadata, as ESO reads it)
// and refuses it for the others, naming the field, rather than reading the value instead.
func metadataPolicy(st *storeConfig, where string, r esv1.ExternalSecretDataRemoteRef) error {
	switch r.MetadataPolicy {
	case "", "None":
		return nil
	case "Fetch":
		if st.backend == "vault" {
			return nil
		}
		return refusal{fmt.Sprintf("%s.metadataPolicy Fetch is supported for Vault stores only (this store is %s)", where, st.backend)}
	}
	return refusal{fmt.Sprintf("%s.metadataPolicy %q: want None or Fetch", where, r.MetadataPolicy)}
}
