package awsfake

import (
	"fmt"
	"strconv"
	"strings"
)

type param struct {
	value  string
	secure bool
}

// PutParameter stores a new version of an SSM parameter (SecureString when secure) and
// returns its version number.
func (f *Server) PutParameter(name, value string, secure bool) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.params[name] = append(f.params[name], param{value: value, secure: secure})
	return len(f.params[name])
}

// getParameters answers AmazonSSM.GetParameters: up to 10 names, each optionally with a
// ":VERSION" selector; unknown names are listed in InvalidParameters. SecureString values
// come back in clear only WithDecryption.
func (f *Server) getParameters(in map[string]any) (any, *apiError) {
	names, _ := in["Names"].([]any)
	if len(names) == 0 || len(names) > 10 {
		return nil, &apiError{400, "ValidationException", "1 validation error detected: Value at 'names' failed to satisfy constraint: Member must have length less than or equal to 10"}
	}
	decrypt, _ := in["WithDecryption"].(bool)
	params := []any{}
	invalid := []any{}
	for _, x := range names {
		sel, _ := x.(string)
		if e := f.fault(sel); e != nil {
			return nil, e
		}
		name, ver, hasVer := strings.Cut(sel, ":")
		f.mu.Lock()
		vs := f.params[name]
		f.mu.Unlock()
		n := len(vs)
		if hasVer {
			v, err := strconv.Atoi(ver)
			if err != nil {
				n = 0
			} else {
				n = v
			}
		}
		if n < 1 || n > len(vs) {
			invalid = append(invalid, sel)
			continue
		}
		p := vs[n-1]
		typ, value := "String", p.value
		if p.secure {
			typ = "SecureString"
			if !decrypt {
				value = "AQICAHh-encrypted-blob"
			}
		}
		params = append(params, map[string]any{"Name": name, "Selector": strings.TrimPrefix(sel, name), "Type": typ, "Value": value, "Version": n,
			"ARN": fmt.Sprintf("arn:aws:ssm:%s:%s:parameter/%s", Region, Account, strings.TrimPrefix(name, "/"))})
	}
	return map[string]any{"Parameters": params, "InvalidParameters": invalid}, nil
}
