package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// pathFlags hold file paths; in a config file they are relative to the config file.
var pathFlags = map[string]bool{"secrets-file": true, "age-identity": true}

// applyConfigFile sets every flag not already given (on the command line or in the
// environment) from a YAML file keyed by flag name, and returns its per-backend sections
// (vault: {address: …}).
func applyConfigFile(fs *pflag.FlagSet, path string) (map[string]map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, usagef("--config: %v", err)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, usagef("--config %s: not a YAML mapping of settings", path)
	}
	return applySettings(fs, raw, filepath.Dir(path), "--config "+path)
}

// applySettings sets flags from a settings mapping (a config file, a KRM functionConfig);
// relative file paths resolve against dir.
func applySettings(fs *pflag.FlagSet, raw map[string]any, dir, where string) (map[string]map[string]string, error) {
	path := where
	sections := map[string]map[string]string{}
	for key, v := range raw {
		if isProviderSection(key) {
			sec, err := sectionSettings(v, key)
			if err != nil {
				return nil, usagef("%s: %v", path, err)
			}
			sections[key] = sec
			continue
		}
		f := fs.Lookup(key)
		if f == nil || key == "config" || key == "help" {
			return nil, usagef("%s: unknown setting %q", path, key)
		}
		if flagSetBy(f) {
			continue
		}
		var items []string
		switch t := v.(type) {
		case []any:
			for _, e := range t {
				items = append(items, fmt.Sprint(e))
			}
		case string:
			items = []string{t}
		case int:
			items = []string{strconv.Itoa(t)}
		default:
			items = []string{fmt.Sprint(t)}
		}
		if pathFlags[key] {
			for i, it := range items {
				if it != "" && !filepath.IsAbs(it) {
					items[i] = filepath.Join(dir, it)
				}
			}
		}
		if err := setFlag(f, strings.Join(items, ",")); err != nil {
			return nil, usagef("%s: setting %q: %v", path, key, err)
		}
	}
	return sections, nil
}
