package vault

import (
	"context"
	"fmt"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
)

// value returns a credential given directly or through its -file setting.
func (c *Client) value(direct, file string) (string, error) {
	if v := c.opts.s[direct]; v != "" {
		return v, nil
	}
	if p := c.opts.s[file]; p != "" {
		return readFile(file, p)
	}
	return "", nil
}

func (c *Client) canLogin() bool { return c.opts.method != "token" }

// login authenticates with the configured method and installs the token. Credentials are
// read from their files at each login, so rotated files are picked up.
func (c *Client) login(ctx context.Context) error {
	var (
		path string
		body map[string]any
	)
	mount := c.opts.mount
	switch c.opts.method {
	case "token":
		tok, err := c.value(SettingToken, SettingTokenFile)
		if err != nil {
			return err
		}
		if tok == "" {
			return fmt.Errorf("no Vault token: set %q or %q (VAULT_TOKEN, ~/.vault-token), or another auth method", SettingToken, SettingTokenFile)
		}
		var auth *vaultapi.SecretAuth
		if c.opts.renew {
			// A token given directly may still be renewable; ask Vault.
			c.api.SetToken(tok)
			if sec, err := c.api.Auth().Token().LookupSelfWithContext(ctx); err == nil && sec != nil {
				renewable, _ := sec.TokenIsRenewable()
				ttl, _ := sec.TokenTTL()
				auth = &vaultapi.SecretAuth{Renewable: renewable, LeaseDuration: int(ttl.Seconds())}
			}
		}
		c.install(tok, auth)
		return nil
	case "approle":
		roleID, err := c.value(SettingRoleID, SettingRoleIDFile)
		if err != nil {
			return err
		}
		secretID, err := c.value(SettingSecretID, SettingSecretIDFile)
		if err != nil {
			return err
		}
		if roleID == "" {
			return fmt.Errorf("approle login: setting %q or %q is required", SettingRoleID, SettingRoleIDFile)
		}
		path, body = "auth/"+mount+"/login", map[string]any{"role_id": roleID, "secret_id": secretID}
	case "kubernetes", "jwt":
		role := c.opts.s[SettingRole]
		if role == "" {
			return fmt.Errorf("%s login: setting %q is required", c.opts.method, SettingRole)
		}
		jwt := c.opts.s[SettingJWT]
		if jwt == "" {
			file := c.opts.s[SettingJWTFile]
			if file == "" && c.opts.method == "kubernetes" {
				file = defaultKubernetesTokenPath
			}
			if file == "" {
				return fmt.Errorf("jwt login: setting %q or %q is required", SettingJWTFile, SettingJWT)
			}
			var err error
			if jwt, err = readFile(SettingJWTFile, file); err != nil {
				return err
			}
		}
		path, body = "auth/"+mount+"/login", map[string]any{"role": role, "jwt": jwt}
	case "userpass":
		user := c.opts.s[SettingUsername]
		pass, err := c.value(SettingPassword, SettingPasswordFile)
		if err != nil {
			return err
		}
		if user == "" || pass == "" {
			return fmt.Errorf("userpass login: settings %q and %q (or %q) are required", SettingUsername, SettingPassword, SettingPasswordFile)
		}
		path, body = "auth/"+mount+"/login/"+user, map[string]any{"password": pass}
	}
	// Log in with a token-less copy so a stale token is never sent along.
	anon, err := c.api.Clone()
	if err != nil {
		return err
	}
	anon.ClearToken()
	if ns := c.opts.namespace; ns != "" {
		anon.SetNamespace(ns)
	}
	secret, err := anon.Logical().WriteWithContext(ctx, path, body)
	if err != nil {
		return classify(err, fmt.Sprintf("vault %s login at %q", c.opts.method, "auth/"+mount))
	}
	if secret == nil || secret.Auth == nil || secret.Auth.ClientToken == "" {
		return fmt.Errorf("vault %s login at %q returned no token", c.opts.method, "auth/"+mount)
	}
	c.install(secret.Auth.ClientToken, secret.Auth)
	c.log.Debug("vault login", "method", c.opts.method, "mount", mount, "ttl", time.Duration(secret.Auth.LeaseDuration)*time.Second, "renewable", secret.Auth.Renewable)
	return nil
}

// install makes tok the current token. With the renew setting, a renewable token is kept
// renewed in the background until Close.
func (c *Client) install(tok string, auth *vaultapi.SecretAuth) {
	c.authMu.Lock()
	c.token = tok
	c.api.SetToken(tok)
	c.gen++
	c.ttl = 0
	if auth != nil && auth.Renewable && auth.LeaseDuration > 0 {
		c.ttl = time.Duration(auth.LeaseDuration) * time.Second
	}
	start := c.opts.renew && c.ttl > 0 && !c.renewing
	if start {
		c.renewing = true
	}
	c.authMu.Unlock()
	if start {
		c.bg.Go(c.renewLoop)
	}
}

// relogin logs in again unless another goroutine already did since generation gen.
func (c *Client) relogin(ctx context.Context, gen int) error {
	c.loginMu.Lock()
	defer c.loginMu.Unlock()
	c.authMu.Lock()
	current := c.gen
	c.authMu.Unlock()
	if current != gen {
		return nil
	}
	return c.login(ctx)
}

// renewLoop renews the token at two thirds of its TTL; when renewal fails (the token reached
// its maximum TTL, or was revoked) it logs in again.
func (c *Client) renewLoop() {
	for {
		c.authMu.Lock()
		ttl, gen := c.ttl, c.gen
		if ttl == 0 {
			c.renewing = false
			c.authMu.Unlock()
			return
		}
		c.authMu.Unlock()
		select {
		case <-c.stop:
			return
		case <-time.After(max(ttl*2/3, time.Second)):
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.opts.timeout)
		secret, err := c.api.Auth().Token().RenewSelfWithContext(ctx, 0)
		if err == nil && secret != nil && secret.Auth != nil && secret.Auth.LeaseDuration > 0 {
			c.authMu.Lock()
			if c.gen == gen {
				c.ttl = time.Duration(secret.Auth.LeaseDuration) * time.Second
			}
			c.authMu.Unlock()
			c.log.Debug("vault token renewed", "ttl", time.Duration(secret.Auth.LeaseDuration)*time.Second)
		} else if c.canLogin() {
			c.log.Info("vault token renewal failed; logging in again", "error", err)
			if err := c.relogin(ctx, gen); err != nil {
				c.log.Warn("vault login failed; retrying in 30s", "error", err)
				c.authMu.Lock()
				c.ttl = 45 * time.Second
				c.authMu.Unlock()
			}
		} else {
			c.log.Warn("vault token renewal failed and the token auth method cannot log in again", "error", err)
			c.authMu.Lock()
			c.ttl = 0
			c.authMu.Unlock()
		}
		cancel()
	}
}
