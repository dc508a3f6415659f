package gitsource

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport"
	"golang.org/x/net/proxy"
)

// go-git's http and git:// transports honour a fetch's context, but its ssh transport
// dials and shakes hands without one: a server that accepts and never answers holds the
// fetch for ever. The only hook go-git gives into that connection is its proxy dialer, so
// an ssh fetch goes through deadlineScheme, a "proxy" that dials directly and puts the
// fetch's deadline on the connection itself; every read and write after it, the handshake
// included, fails once the deadline passes.
const deadlineScheme = "keyway-deadline"

func init() {
	proxy.RegisterDialerType(deadlineScheme, func(u *url.URL, _ proxy.Dialer) (proxy.Dialer, error) {
		ns, err := strconv.ParseInt(u.Query().Get("until"), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("gitsource: deadline dialer: %w", err)
		}
		return deadlineDialer{until: time.Unix(0, ns)}, nil
	})
}

type deadlineDialer struct{ until time.Time }

func (d deadlineDialer) Dial(network, addr string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, addr)
}

func (d deadlineDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	ctx, cancel := context.WithDeadline(ctx, d.until)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if err := conn.SetDeadline(d.until); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return conn, nil
}

// deadlineProxy is the proxy setting that bounds an ssh fetch of url by ctx's deadline; for
// other transports (and without a deadline) it is empty.
func deadlineProxy(ctx context.Context, url string) transport.ProxyOptions {
	ep, err := transport.NewEndpoint(url)
	until, ok := ctx.Deadline()
	if err != nil || !ok || ep.Protocol != "ssh" {
		return transport.ProxyOptions{}
	}
	return transport.ProxyOptions{URL: deadlineScheme + "://deadline/?until=" + strconv.FormatInt(until.UnixNano(), 10)}
}
