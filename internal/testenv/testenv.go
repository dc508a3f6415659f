package testenv

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// BinDirEnv names the environment variable that overrides where the test binaries live.
const BinDirEnv = "KEYWAY_TESTENV_BIN"

// Options tune Start. The zero value finds the binaries in the repository's cache.
type Options struct {
	// BinDir holds kube-apiserver (and optionally etcd). Empty means $KEYWAY_TESTENV_BIN,
	// then <module root>/.cache/testenv/bin.
	BinDir string
	// ReadyTimeout bounds the wait for /readyz. Zero means 90 s.
	ReadyTimeout time.Duration
}

// Env is a running etcd + kube-apiserver pair.
type Env struct {
	// Config authenticates as a cluster administrator (system:masters).
	Config *rest.Config
	// Kubeconfig is the path of a kubeconfig file holding the same credentials.
	Kubeconfig string
	// StartupTime is the time from starting etcd to kube-apiserver answering /readyz.
	StartupTime time.Duration
	// AuditLog is the API server's audit log: one JSON event per request (Metadata level).
	AuditLog string

	dir   string
	procs []*process
	// how kube-apiserver was started, to start it again after StopAPIServer
	apiserverBin  string
	apiserverArgs []string
	readyz, token string
	readyTimeout  time.Duration
}

type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// Start launches etcd and kube-apiserver on free loopback ports and waits until the API
// server is ready. The caller must call Stop, which also removes every temporary file.
func Start(ctx context.Context, opts Options) (_ *Env, err error) {
	begin := time.Now()
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 90 * time.Second
	}
	apiserver, etcd, err := findBinaries(opts.BinDir)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "keyway-testenv-")
	if err != nil {
		return nil, fmt.Errorf("testenv: %w", err)
	}
	env := &Env{dir: dir}
	defer func() {
		if err != nil {
			env.Stop()
		}
	}()

	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	if err := env.spawn("etcd", etcd,
		"--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", etcdURL,
		"--advertise-client-urls", etcdURL,
		"--listen-peer-urls", "http://127.0.0.1:"+strconv.Itoa(ports[1]),
		"--initial-advertise-peer-urls", "http://127.0.0.1:"+strconv.Itoa(ports[1]),
		"--initial-cluster", "default=http://127.0.0.1:"+strconv.Itoa(ports[1]),
		"--log-level", "warn",
	); err != nil {
		return nil, err
	}
	if err := env.waitHTTP(ctx, "etcd", etcdURL+"/health", nil, opts.ReadyTimeout); err != nil {
		return nil, err
	}

	token, err := env.writeCredentials()
	if err != nil {
		return nil, err
	}
	certDir := filepath.Join(dir, "certs")
	secure := ports[2]
	env.apiserverBin, env.apiserverArgs = apiserver, []string{
		"--etcd-servers=" + etcdURL,
		"--cert-dir=" + certDir,
		"--secure-port=" + strconv.Itoa(secure),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--endpoint-reconciler-type=none", // loopback cannot back the kubernetes Service endpoints
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + filepath.Join(dir, "sa.pub"),
		"--service-account-signing-key-file=" + filepath.Join(dir, "sa.key"),
		"--token-auth-file=" + filepath.Join(dir, "tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-cluster-ip-range=10.0.0.0/24",
		"--allow-privileged=true",
		"--disable-admission-plugins=ServiceAccount",
		"--audit-policy-file=" + filepath.Join(dir, "audit-policy.yaml"),
		"--audit-log-path=" + filepath.Join(dir, "audit.log"),
		"--audit-log-format=json",
		"--v=0",
	}
	host := "https://127.0.0.1:" + strconv.Itoa(secure)
	env.readyz, env.token, env.readyTimeout = host+"/readyz", token, opts.ReadyTimeout
	if err := env.StartAPIServer(ctx); err != nil {
		return nil, err
	}

	caData, err := servingCA(filepath.Join(certDir, "apiserver.crt"))
	if err != nil {
		return nil, err
	}
	env.Config = &rest.Config{
		Host:            host,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: caData},
		QPS:             1000,
		Burst:           2000,
	}
	env.AuditLog = filepath.Join(dir, "audit.log")
	env.Kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := writeKubeconfig(env.Kubeconfig, env.Config); err != nil {
		return nil, err
	}
	env.StartupTime = time.Since(begin)
	return env, nil
}

// StopAPIServer kills kube-apiserver (SIGKILL: an outage, not a drained shutdown); etcd
// keeps the cluster's state. Clients see connections refused until StartAPIServer.
func (e *Env) StopAPIServer() error {
	for i, p := range e.procs {
		if p.name == "kube-apiserver" {
			e.procs = append(e.procs[:i], e.procs[i+1:]...)
			_ = p.cmd.Process.Kill()
			<-p.done
			return nil
		}
	}
	return errors.New("testenv: kube-apiserver is not running")
}

// StartAPIServer starts kube-apiserver (again) on the same address with the same
// credentials and waits until it is ready.
func (e *Env) StartAPIServer(ctx context.Context) error {
	if err := e.spawn("kube-apiserver", e.apiserverBin, e.apiserverArgs...); err != nil {
		return err
	}
	return e.waitHTTP(ctx, "kube-apiserver", e.readyz, map[string]string{"Authorization": "Bearer " + e.token}, e.readyTimeout)
}

// stopProcess stops one named process early.
func (e *Env) stopProcess(name string) error {
	for i, p := range e.procs {
		if p.name != name {
			continue
		}
		e.procs = append(e.procs[:i], e.procs[i+1:]...)
		if p.terminate() {
			return fmt.Errorf("testenv: %s did not stop on SIGTERM and was killed", p.name)
		}
		return nil
	}
	return nil
}

// terminate sends SIGTERM, then SIGKILL after 10 s, and waits; it reports whether the
// process had to be killed.
func (p *process) terminate() (killed bool) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return false
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		return true
	}
}

// Stop terminates the processes (SIGTERM, then SIGKILL after 10 s) and removes the
// temporary directory. It is safe to call more than once.
func (e *Env) Stop() error {
	var errs []error
	for i := len(e.procs) - 1; i >= 0; i-- {
		if p := e.procs[i]; p.terminate() {
			errs = append(errs, fmt.Errorf("testenv: %s did not stop on SIGTERM and was killed", p.name))
		}
	}
	e.procs = nil
	if e.dir != "" {
		if err := os.RemoveAll(e.dir); err != nil {
			errs = append(errs, fmt.Errorf("testenv: %w", err))
		}
		e.dir = ""
	}
	return errors.Join(errs...)
}

func (e *Env) spawn(name, bin string, args ...string) error {
	return e.spawnEnv(name, bin, nil, args...)
}

// spawnEnv starts a process with extra environment variables on top of a minimal base.
func (e *Env) spawnEnv(name, bin string, extraEnv []string, args ...string) error {
	logPath := filepath.Join(e.dir, name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Dir = e.dir
	if extraEnv != nil {
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, extraEnv...)
	}
	// Children die with the test binary even when it is killed, so no process outlives a run.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("testenv: start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	e.procs = append(e.procs, p)
	return nil
}

func (e *Env) waitHTTP(ctx context.Context, name, url string, header map[string]string, timeout time.Duration) error {
	client := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, // readiness probe only; clients verify the CA
	}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(timeout)
	proc := e.procs[len(e.procs)-1]
	var last string
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("testenv: %w", err)
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err == nil {
			body := make([]byte, 512)
			n, _ := resp.Body.Read(body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(body[:n]))
		} else {
			last = err.Error()
		}
		select {
		case <-proc.done:
			return fmt.Errorf("testenv: %s exited before it was ready:\n%s", name, tail(proc.log, 30))
		case <-ctx.Done():
			return fmt.Errorf("testenv: waiting for %s: %w", name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("testenv: %s not ready after %s (last: %s):\n%s", name, timeout, last, tail(proc.log, 30))
		}
	}
}

// writeCredentials writes the service-account signing key pair and a static token file
// holding one cluster-admin token, and returns the token.
func (e *Env) writeCredentials() (string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", fmt.Errorf("testenv: %w", err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", fmt.Errorf("testenv: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return "", fmt.Errorf("testenv: %w", err)
	}
	raw := make([]byte, 16)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("testenv: %w", err)
	}
	token := hex.EncodeToString(raw)
	files := map[string][]byte{
		"sa.key":     pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}),
		"sa.pub":     pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}),
		"tokens.csv": []byte(token + ",admin,admin,system:masters\n"),
		// Every request is recorded (who, what, no bodies) so tests can count them as the
		// API server saw them.
		"audit-policy.yaml": []byte("apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Metadata\n"),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(e.dir, name), data, 0o600); err != nil {
			return "", fmt.Errorf("testenv: %w", err)
		}
	}
	return token, nil
}

func writeKubeconfig(path string, cfg *rest.Config) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["testenv"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: cfg.BearerToken}
	kc.Contexts["testenv"] = &clientcmdapi.Context{Cluster: "testenv", AuthInfo: "admin", Namespace: "default"}
	kc.CurrentContext = "testenv"
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		return fmt.Errorf("testenv: write kubeconfig: %w", err)
	}
	return nil
}

// servingCA returns the PEM certificates kube-apiserver wrote for its self-signed serving
// certificate; the file holds the leaf and the CA that signed it.
func servingCA(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("testenv: read serving certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("testenv: %s holds no PEM certificate", path)
	}
	return data, nil
}

// freePorts reserves n distinct loopback ports by listening, then releases them for the
// child processes. Holding all n listeners at once keeps the kernel from handing one twice.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("testenv: reserve port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func binDir(dir string) (string, error) {
	if dir == "" {
		dir = os.Getenv(BinDirEnv)
	}
	if dir == "" {
		root, err := moduleRoot()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(root, ".cache", "testenv", "bin")
	}
	return dir, nil
}

// findBinary locates a cached test binary by name.
func findBinary(name string) (string, error) {
	dir, err := binDir("")
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("testenv: %s not found at %s: run `make testenv` first (or set %s)", name, p, BinDirEnv)
	}
	return p, nil
}

func findBinaries(dir string) (apiserver, etcd string, err error) {
	binDir, err := binDir(dir)
	if err != nil {
		return "", "", err
	}
	apiserver = filepath.Join(binDir, "kube-apiserver")
	if _, err := os.Stat(apiserver); err != nil {
		return "", "", fmt.Errorf("testenv: kube-apiserver not found at %s: run `make testenv` first (or set %s)", apiserver, BinDirEnv)
	}
	etcd = filepath.Join(binDir, "etcd")
	if _, err := os.Stat(etcd); err != nil {
		etcd, err = exec.LookPath("etcd")
		if err != nil {
			return "", "", fmt.Errorf("testenv: etcd not found in %s or on PATH: run `make testenv` first (it installs Debian's etcd-server)", binDir)
		}
	}
	return apiserver, etcd, nil
}

// moduleRoot walks up from the working directory to keyway's go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("testenv: %w", err)
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(data, []byte("module github.com/keyway-dev/keyway\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("testenv: keyway's go.mod not found above the working directory; set " + BinDirEnv)
		}
		dir = parent
	}
}

func tail(path string, lines int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// Binary returns the path of a cached test binary (helm, kustomize, vault, …) or an error
// that says to run `make testenv`.
func Binary(name string) (string, error) { return findBinary(name) }
