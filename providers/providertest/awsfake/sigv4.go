package awsfake

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// verifySigV4 recomputes the request's AWS Signature Version 4 from the headers it says it
// signed and compares it with the one sent. It returns who signed: AccessKeyID, or the role
// of a session the fake's STS issued (whose session token must come with it).
func (f *Server) verifySigV4(r *http.Request, body []byte, service string) (string, *apiError) {
	auth := r.Header.Get("Authorization")
	rest, ok := strings.CutPrefix(auth, "AWS4-HMAC-SHA256 ")
	if !ok {
		return "", &apiError{400, "MissingAuthenticationTokenException", "Missing Authentication Token"}
	}
	fields := map[string]string{}
	for part := range strings.SplitSeq(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		fields[k] = v
	}
	cred := strings.Split(fields["Credential"], "/")
	if len(cred) != 5 || cred[4] != "aws4_request" {
		return "", &apiError{400, "IncompleteSignatureException", "malformed Credential"}
	}
	principal, secretKey := AccessKeyID, SecretAccessKey
	if cred[0] != AccessKeyID {
		f.mu.Lock()
		sess, ok := f.sessions[cred[0]]
		f.mu.Unlock()
		if !ok || r.Header.Get("X-Amz-Security-Token") != sess.token {
			return "", &apiError{400, "UnrecognizedClientException", "The security token included in the request is invalid."}
		}
		principal, secretKey = sess.role, sess.secret
	}
	if cred[3] != service {
		return "", &apiError{400, "InvalidSignatureException", "Credential should be scoped to correct service: '" + service + "'."}
	}
	amzDate := r.Header.Get("X-Amz-Date")
	if !strings.HasPrefix(amzDate, cred[1]) {
		return "", &apiError{400, "InvalidSignatureException", "date in Credential scope does not match X-Amz-Date"}
	}
	if t, err := time.Parse("20060102T150405Z", amzDate); err != nil || time.Since(t).Abs() > 15*time.Minute {
		return "", &apiError{400, "InvalidSignatureException", "Signature expired or X-Amz-Date malformed"}
	}
	payload := sha256.Sum256(body)
	payloadHex := hex.EncodeToString(payload[:])
	if h := r.Header.Get("X-Amz-Content-Sha256"); h != "" && h != payloadHex {
		return "", &apiError{400, "InvalidSignatureException", "payload hash does not match X-Amz-Content-Sha256"}
	}
	signed := strings.Split(fields["SignedHeaders"], ";")
	var ch strings.Builder
	for _, h := range signed {
		var v string
		switch h {
		case "host":
			v = r.Host
		case "content-length":
			v = strconv.FormatInt(r.ContentLength, 10)
		default:
			v = strings.Join(r.Header.Values(h), ",")
		}
		ch.WriteString(h + ":" + strings.Join(strings.Fields(v), " ") + "\n")
	}
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	canonical := strings.Join([]string{r.Method, path, r.URL.RawQuery, ch.String(), fields["SignedHeaders"], payloadHex}, "\n")
	ch256 := sha256.Sum256([]byte(canonical))
	scope := strings.Join(cred[1:], "/")
	toSign := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(ch256[:])
	key := hmacSHA256([]byte("AWS4"+secretKey), cred[1])
	key = hmacSHA256(key, cred[2])
	key = hmacSHA256(key, cred[3])
	key = hmacSHA256(key, "aws4_request")
	want := hex.EncodeToString(hmacSHA256(key, toSign))
	if !hmac.Equal([]byte(want), []byte(fields["Signature"])) {
		return "", &apiError{400, "InvalidSignatureException", "The request signature we calculated does not match the signature you provided."}
	}
	return principal, nil
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}
