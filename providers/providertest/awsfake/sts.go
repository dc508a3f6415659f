package awsfake

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// STS: AssumeRole (signed) and AssumeRoleWithWebIdentity (unsigned, a JWT) over the query
// protocol, as the SDK's stscreds providers call them. Issued session credentials sign later
// calls (with their session token); calls are counted per principal.

type session struct {
	secret, token, role string
}

// WebIdentityVerifier checks a web identity token as an OIDC provider's keys would, returning
// its subject (the fake's test wires it to the Kubernetes TokenReview API).
type WebIdentityVerifier func(token string) (subject string, err error)

// SetWebIdentityVerifier sets how tokens of AssumeRoleWithWebIdentity are checked; without
// one every token is refused.
func (f *Server) SetWebIdentityVerifier(v WebIdentityVerifier) {
	f.mu.Lock()
	f.verifier = v
	f.mu.Unlock()
}

// Trust lets a principal assume a role: a web identity subject
// ("system:serviceaccount:NS:NAME"), AccessKeyID for the static credentials, or a role ARN
// (role chaining).
func (f *Server) Trust(roleARN, principal string) {
	f.mu.Lock()
	f.trust[roleARN+"\x00"+principal] = true
	f.mu.Unlock()
}

// CallsBy counts Secrets Manager and Parameter Store calls signed by a principal: a role ARN
// for assumed sessions, AccessKeyID for the static credentials.
func (f *Server) CallsBy(principal string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.byPrincipal[principal]
}

type stsCredentials struct {
	AccessKeyID     string `xml:"AccessKeyId"`
	SecretAccessKey string `xml:"SecretAccessKey"`
	SessionToken    string `xml:"SessionToken"`
	Expiration      string `xml:"Expiration"`
}

type assumedRoleUser struct {
	Arn           string `xml:"Arn"`
	AssumedRoleID string `xml:"AssumedRoleId"`
}

func stsError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	type errBody struct {
		Type    string `xml:"Type"`
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	_ = xml.NewEncoder(w).Encode(struct {
		XMLName   xml.Name `xml:"https://sts.amazonaws.com/doc/2011-06-15/ ErrorResponse"`
		Error     errBody  `xml:"Error"`
		RequestID string   `xml:"RequestId"`
	}{Error: errBody{"Sender", code, msg}, RequestID: "00000000-0000-0000-0000-000000000000"})
}

// sts answers one STS request; principal is who signed it ("" when unsigned).
func (f *Server) sts(w http.ResponseWriter, form url.Values, principal string) {
	action := form.Get("Action")
	f.mu.Lock()
	f.calls[action]++
	f.mu.Unlock()
	role := form.Get("RoleArn")
	switch action {
	case "AssumeRoleWithWebIdentity":
		f.mu.Lock()
		verify := f.verifier
		f.mu.Unlock()
		if verify == nil {
			stsError(w, 400, "InvalidIdentityToken", "Couldn't retrieve verification key from your identity provider, please reference AssumeRoleWithWebIdentity documentation for requirements")
			return
		}
		sub, err := verify(form.Get("WebIdentityToken"))
		if err != nil {
			stsError(w, 400, "InvalidIdentityToken", "Incorrect token audience or signature")
			return
		}
		principal = sub
	case "AssumeRole":
		if principal == "" {
			stsError(w, 403, "MissingAuthenticationToken", "Request is missing Authentication Token")
			return
		}
	default:
		stsError(w, 400, "InvalidAction", "Could not find operation "+action+" for version 2011-06-15")
		return
	}
	f.mu.Lock()
	trusted := f.trust[role+"\x00"+principal]
	f.mu.Unlock()
	if !trusted {
		stsError(w, 403, "AccessDenied", "Not authorized to perform sts:"+action)
		return
	}
	f.mu.Lock()
	f.seq++
	id := fmt.Sprintf("ASIAKEYWAYTEST%06d", f.seq)
	s := session{secret: fmt.Sprintf("session-secret-%d", f.seq), token: fmt.Sprintf("session-token-%d", f.seq), role: role}
	f.sessions[id] = s
	f.mu.Unlock()
	creds := stsCredentials{id, s.secret, s.token, time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}
	user := assumedRoleUser{Arn: role + "/" + form.Get("RoleSessionName"), AssumedRoleID: "AROAKEYWAY:" + form.Get("RoleSessionName")}
	w.Header().Set("Content-Type", "text/xml")
	type result struct {
		Credentials     stsCredentials  `xml:"Credentials"`
		AssumedRoleUser assumedRoleUser `xml:"AssumedRoleUser"`
	}
	type meta struct {
		RequestID string `xml:"RequestId"`
	}
	if action == "AssumeRole" {
		_ = xml.NewEncoder(w).Encode(struct {
			XMLName xml.Name `xml:"https://sts.amazonaws.com/doc/2011-06-15/ AssumeRoleResponse"`
			Result  result   `xml:"AssumeRoleResult"`
			Meta    meta     `xml:"ResponseMetadata"`
		}{Result: result{creds, user}})
		return
	}
	_ = xml.NewEncoder(w).Encode(struct {
		XMLName xml.Name `xml:"https://sts.amazonaws.com/doc/2011-06-15/ AssumeRoleWithWebIdentityResponse"`
		Result  struct {
			result
			Subject string `xml:"SubjectFromWebIdentityToken"`
		} `xml:"AssumeRoleWithWebIdentityResult"`
		Meta meta `xml:"ResponseMetadata"`
	}{Result: struct {
		result
		Subject string `xml:"SubjectFromWebIdentityToken"`
	}{result{creds, user}, principal}})
}
