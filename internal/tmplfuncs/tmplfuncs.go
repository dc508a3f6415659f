// Package tmplfuncs is the one function map every template keyway runs from someone
// else's manifest uses (SealedSecret templates, ExternalSecret templates, ApplicationSet
// templates): Sprig's generic functions less those that would let the template's author
// learn about the host (env, expandenv, getHostByName), spend memory or CPU without bound
// (until, untilStep, seq, repeat, the key and certificate generators, derivePassword) or
// write a chosen string into an error that ends up in events and status (fail).
package tmplfuncs

import (
	"text/template"

	"github.com/Masterminds/sprig/v3"
)

var denied = []string{
	"env", "expandenv", "getHostByName",
	"until", "untilStep", "seq", "repeat",
	"genPrivateKey", "genCA", "genCAWithKey", "genSelfSignedCert", "genSelfSignedCertWithKey",
	"genSignedCert", "genSignedCertWithKey", "buildCustomCert", "derivePassword",
	"fail",
}

// Safe returns a new copy of the function map.
func Safe() template.FuncMap {
	m := sprig.GenericFuncMap()
	for _, name := range denied {
		delete(m, name)
	}
	return m
}
