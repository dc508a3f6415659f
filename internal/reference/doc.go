// Package reference is keyway's reference grammar: the one parser that turns a string value
// into literal text and placeholders. Everything that finds secret references — render, the
// syncer, sealing — uses this AST, so a reference means the same thing everywhere.
//
// Accepted forms (see DESIGN.md):
//
//	<path:secret/data/app#password>          argocd-vault-plugin inline path
//	<path:secret/data/app#password#3>        … at version 3
//	<password>                               generic, only where generic placeholders are enabled
//	<path:P#K | base64encode | indent 4>     modifiers, applied left to right
//	ref+vault://secret/data/app#/password    URI naming its backend, JSON pointer after #
//	ref+awssm://prod/db?version=AWSPREVIOUS#/url+   a trailing + ends a URI inside text
package reference
