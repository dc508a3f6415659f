// Package gcpfake is a wire-level fake of GCP Secret Manager for tests and local trials: a
// gRPC server over TLS implementing the generated SecretManagerServiceServer
// (AccessSecretVersion, GetSecret, ListSecrets, ListSecretVersions). It checks the bearer
// token in the authorization metadata, returns the service's status codes, and can inject
// latency and failures per secret while counting calls. Beside it, an OAuth 2.0 token
// endpoint (HTTPS, same certificate) exchanges JWTs signed by service-account keys it issued
// for that token, checking signature, issuer, audience, scope and expiry as Google's does.
package gcpfake

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Token is the bearer token the fake accepts.
const Token = "keyway-test-gcp-token"

// Fault changes how the fake answers for one secret (projects/P/secrets/S).
type Fault struct {
	Latency     time.Duration
	Unavailable int        // answer UNAVAILABLE this many times first
	Code        codes.Code // answer with this code every time
}

// Server is the fake.
type Server struct {
	secretmanagerpb.UnimplementedSecretManagerServiceServer

	// Addr is host:port; CAFile holds the PEM certificate clients must trust.
	Addr, CAFile string
	// TokenURL is the token endpoint service-account keys from ServiceAccountKey name.
	TokenURL string

	srv    *grpc.Server
	tokens *http.Server
	keys   map[string]*rsa.PublicKey // service-account email → public key

	mu       sync.Mutex
	versions map[string][][]byte // secret name → payloads, version n at index n-1
	disabled map[string]bool     // full version names
	faults   map[string]*Fault
	calls    map[string]int
	denied   map[string]bool // methods answered PERMISSION_DENIED
	latency  time.Duration
}

// New starts the fake with a fresh self-signed certificate written under dir.
func New(dir string) (*Server, error) {
	certPEM, keyPEM, err := selfSigned()
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	caFile := filepath.Join(dir, "gcpfake-ca.pem")
	if err := os.WriteFile(caFile, certPEM, 0o600); err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		l.Close()
		return nil, err
	}
	f := &Server{
		Addr: l.Addr().String(), CAFile: caFile, TokenURL: "https://" + tl.Addr().String() + "/token",
		versions: map[string][][]byte{}, disabled: map[string]bool{}, faults: map[string]*Fault{}, calls: map[string]int{},
		keys: map[string]*rsa.PublicKey{},
	}
	f.srv = grpc.NewServer(grpc.Creds(credentials.NewServerTLSFromCert(&cert)), grpc.UnaryInterceptor(f.intercept))
	secretmanagerpb.RegisterSecretManagerServiceServer(f.srv, f)
	go func() { _ = f.srv.Serve(l) }()
	f.tokens = &http.Server{Handler: http.HandlerFunc(f.token), TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = f.tokens.ServeTLS(tl, "", "") }()
	return f, nil
}

// Close stops the server.
func (f *Server) Close() { f.srv.Stop(); f.tokens.Close() }

// ServiceAccountKey issues a key for a service account, as the JSON file Google hands out,
// naming the fake's token endpoint; JWTs it signs are exchanged for Token.
func (f *Server) ServiceAccountKey(email string) ([]byte, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.keys[email] = &key.PublicKey
	f.mu.Unlock()
	return json.Marshal(map[string]string{
		"type": "service_account", "project_id": "keyway-test", "private_key_id": "k1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": email, "client_id": "1", "token_uri": f.TokenURL,
	})
}

// token is the OAuth 2.0 JWT-bearer grant (RFC 7523) as Google's endpoint answers it.
func (f *Server) token(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.calls["token"]++
	f.mu.Unlock()
	fail := func(code, desc string) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
	}
	if r.Method != http.MethodPost || r.URL.Path != "/token" {
		http.NotFound(w, r)
		return
	}
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		fail("unsupported_grant_type", "Invalid grant_type: "+r.PostForm.Get("grant_type"))
		return
	}
	parts := strings.Split(r.PostForm.Get("assertion"), ".")
	if len(parts) != 3 {
		fail("invalid_request", "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.")
		return
	}
	var claims struct {
		Iss, Scope, Aud string
		Exp, Iat        int64
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || json.Unmarshal(raw, &claims) != nil {
		fail("invalid_request", "Invalid JWT.")
		return
	}
	f.mu.Lock()
	pub := f.keys[claims.Iss]
	f.mu.Unlock()
	if pub == nil {
		fail("invalid_grant", "Invalid grant: account not found")
		return
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err != nil || rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig) != nil {
		fail("invalid_grant", "Invalid JWT Signature.")
		return
	}
	now := time.Now().Unix()
	if claims.Aud != f.TokenURL || claims.Exp < now || claims.Iat > now+60 || !strings.Contains(claims.Scope, "https://www.googleapis.com/auth/cloud-platform") {
		fail("invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.")
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": Token, "expires_in": 3599, "token_type": "Bearer"})
}

// Add stores a new version of secret (projects/P/secrets/S) and returns its number.
func (f *Server) Add(secret string, payload []byte) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.versions[secret] = append(f.versions[secret], payload)
	return len(f.versions[secret])
}

// Disable marks a version disabled (FAILED_PRECONDITION on access, as the service does).
func (f *Server) Disable(secret string, version int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.disabled[fmt.Sprintf("%s/versions/%d", secret, version)] = true
}

// SetFault installs a fault for a secret, nil to clear.
func (f *Server) SetFault(secret string, fault *Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fault == nil {
		delete(f.faults, secret)
		return
	}
	f.faults[secret] = fault
}

// SetLatency adds latency to every call.
func (f *Server) SetLatency(d time.Duration) { f.mu.Lock(); f.latency = d; f.mu.Unlock() }

// Calls returns how many calls of a method ("AccessSecretVersion", …) arrived.
func (f *Server) Calls(method string) int { f.mu.Lock(); defer f.mu.Unlock(); return f.calls[method] }

// Deny answers every call of method (GetSecretVersion, say) with PERMISSION_DENIED, as
// for credentials whose role lacks that permission.
func (f *Server) Deny(method string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.denied == nil {
		f.denied = map[string]bool{}
	}
	f.denied[method] = true
}

// ResetCalls zeroes the counters.
func (f *Server) ResetCalls() { f.mu.Lock(); f.calls = map[string]int{}; f.mu.Unlock() }

func (f *Server) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	method := info.FullMethod[strings.LastIndex(info.FullMethod, "/")+1:]
	f.mu.Lock()
	f.calls[method]++
	latency, denied := f.latency, f.denied[method]
	f.mu.Unlock()
	md, _ := metadata.FromIncomingContext(ctx)
	auth := md.Get("authorization")
	if len(auth) == 0 {
		return nil, status.Error(codes.Unauthenticated, "Request is missing required authentication credential. Expected OAuth 2 access token.")
	}
	if auth[0] != "Bearer "+Token {
		return nil, status.Error(codes.Unauthenticated, "Request had invalid authentication credentials.")
	}
	if denied {
		return nil, status.Errorf(codes.PermissionDenied, "Permission 'secretmanager.%s' denied for resource (or it may not exist).", method)
	}
	if latency > 0 {
		select {
		case <-time.After(latency):
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	return handler(ctx, req)
}

func (f *Server) fault(secret string) error {
	f.mu.Lock()
	fl := f.faults[secret]
	var latency time.Duration
	var err error
	if fl != nil {
		latency = fl.Latency
		switch {
		case fl.Unavailable > 0:
			fl.Unavailable--
			err = status.Error(codes.Unavailable, "The service is currently unavailable.")
		case fl.Code != codes.OK:
			err = status.Errorf(fl.Code, "injected %s", fl.Code)
		}
	}
	f.mu.Unlock()
	if latency > 0 {
		time.Sleep(latency)
	}
	return err
}

// split parses projects/P[/locations/L]/secrets/S/versions/V.
func split(name string) (secret, version string, ok bool) {
	i := strings.LastIndex(name, "/versions/")
	if i < 0 {
		return "", "", false
	}
	return name[:i], name[i+len("/versions/"):], strings.Contains(name[:i], "/secrets/") && strings.HasPrefix(name, "projects/")
}

// version resolves a version name ("latest" or a number): its payload, its full name and
// whether it is disabled, or the service's error.
func (f *Server) version(name string) (payload []byte, full string, disabled bool, err error) {
	secret, version, ok := split(name)
	if !ok {
		return nil, "", false, status.Errorf(codes.InvalidArgument, "Invalid resource field value in the request.")
	}
	if err := f.fault(secret); err != nil {
		return nil, "", false, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	vs, ok := f.versions[secret]
	if !ok {
		return nil, "", false, status.Errorf(codes.NotFound, "Secret [%s] not found or has no versions.", secret)
	}
	n := len(vs)
	if version != "latest" {
		var err error
		n, err = strconv.Atoi(version)
		if err != nil || n < 1 || n > len(vs) {
			return nil, "", false, status.Errorf(codes.NotFound, "Secret Version [%s] not found.", name)
		}
	}
	full = fmt.Sprintf("%s/versions/%d", secret, n)
	return vs[n-1], full, f.disabled[full], nil
}

// AccessSecretVersion implements the service.
func (f *Server) AccessSecretVersion(_ context.Context, req *secretmanagerpb.AccessSecretVersionRequest) (*secretmanagerpb.AccessSecretVersionResponse, error) {
	payload, full, disabled, err := f.version(req.GetName())
	if err != nil {
		return nil, err
	}
	if disabled {
		return nil, status.Errorf(codes.FailedPrecondition, "Secret Version [%s] is in DISABLED state.", full)
	}
	return &secretmanagerpb.AccessSecretVersionResponse{Name: full, Payload: &secretmanagerpb.SecretPayload{Data: payload}}, nil
}

// GetSecretVersion implements the service: the version's resource ("latest" resolved to
// its number) and state, never its payload.
func (f *Server) GetSecretVersion(_ context.Context, req *secretmanagerpb.GetSecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	_, full, disabled, err := f.version(req.GetName())
	if err != nil {
		return nil, err
	}
	state := secretmanagerpb.SecretVersion_ENABLED
	if disabled {
		state = secretmanagerpb.SecretVersion_DISABLED
	}
	return &secretmanagerpb.SecretVersion{Name: full, State: state}, nil
}

// GetSecret implements the service.
func (f *Server) GetSecret(_ context.Context, req *secretmanagerpb.GetSecretRequest) (*secretmanagerpb.Secret, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.versions[req.GetName()]; !ok {
		return nil, status.Errorf(codes.NotFound, "Secret [%s] not found.", req.GetName())
	}
	return &secretmanagerpb.Secret{Name: req.GetName()}, nil
}

// ListSecrets implements the service (no pagination).
func (f *Server) ListSecrets(_ context.Context, req *secretmanagerpb.ListSecretsRequest) (*secretmanagerpb.ListSecretsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var names []string
	for n := range f.versions {
		if strings.HasPrefix(n, req.GetParent()+"/secrets/") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	out := &secretmanagerpb.ListSecretsResponse{TotalSize: int32(len(names))}
	for _, n := range names {
		out.Secrets = append(out.Secrets, &secretmanagerpb.Secret{Name: n})
	}
	return out, nil
}

// ListSecretVersions implements the service (no pagination).
func (f *Server) ListSecretVersions(_ context.Context, req *secretmanagerpb.ListSecretVersionsRequest) (*secretmanagerpb.ListSecretVersionsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	vs, ok := f.versions[req.GetParent()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "Secret [%s] not found.", req.GetParent())
	}
	out := &secretmanagerpb.ListSecretVersionsResponse{TotalSize: int32(len(vs))}
	for i := len(vs); i >= 1; i-- {
		name := fmt.Sprintf("%s/versions/%d", req.GetParent(), i)
		state := secretmanagerpb.SecretVersion_ENABLED
		if f.disabled[name] {
			state = secretmanagerpb.SecretVersion_DISABLED
		}
		out.Versions = append(out.Versions, &secretmanagerpb.SecretVersion{Name: name, State: state})
	}
	return out, nil
}

func selfSigned() (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "gcpfake"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}
