package main

import (
	"flag"
	"fmt"
	"slices"
	"strings"
)

// A command group (keys, auth) parses every subcommand with one flag set;
// these tables say which flags each subcommand takes, so that `-h` lists
// only those and a flag of another subcommand is refused, not ignored.

// clientFlagNames are the flags every client command takes (clientFlags).
var clientFlagNames = []string{"url", "data", "config", "ca", "token-file"}

var keyAttrFlags = []string{"exportable", "enabled", "ops", "tags", "release-policy", "immutable"}

var keysSubFlags = map[string][]string{
	"create":          append([]string{"name", "kty", "size", "crv"}, keyAttrFlags...),
	"import":          append([]string{"name", "jwk", "hsm"}, keyAttrFlags...),
	"get":             {"name", "version"},
	"list":            {},
	"versions":        {"name"},
	"update":          append([]string{"name", "version"}, keyAttrFlags...),
	"delete":          {"name"},
	"deleted":         {"name"},
	"recover":         {"name"},
	"purge":           {"name"},
	"backup":          {"name", "file"},
	"restore":         {"file"},
	"rotate":          {"name"},
	"rotation-policy": {"name", "file"},
	"random":          {"count"},
	"encrypt":         {"name", "version", "alg", "value", "iv", "aad"},
	"decrypt":         {"name", "version", "alg", "value", "iv", "aad", "tag"},
	"wrap":            {"name", "version", "alg", "value"},
	"unwrap":          {"name", "version", "alg", "value"},
	"sign":            {"name", "version", "alg", "value"},
	"verify":          {"name", "version", "alg", "value", "digest"},
}

var authSubFlags = map[string][]string{
	"create":       {"name", "role", "scope", "oidc-subject", "secret-file"},
	"list":         {},
	"get":          {"id"},
	"delete":       {"id"},
	"reset-secret": {"id", "secret-file"},
	"grant":        {"id", "role", "scope"},
	"revoke":       {"id", "role", "scope"},
	"adopt":        {"name"},
}

// subcommandFlags narrows fs to the flags of one subcommand: -h lists
// them (the group's own flags, then the client flags), and check refuses
// any other flag that was set. An unknown subcommand keeps every flag, so
// that its error names the subcommand rather than a flag.
func subcommandFlags(fs *flag.FlagSet, table map[string][]string, op string, own ...string) (check func() error) {
	names, known := table[op]
	if !known {
		return func() error { return nil }
	}
	allowed := slices.Concat(names, own, clientFlagNames)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage of %s:\n", fs.Name())
		shown := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
		shown.SetOutput(fs.Output())
		for _, n := range allowed {
			if f := fs.Lookup(n); f != nil {
				shown.Var(f.Value, f.Name, f.Usage)
				shown.Lookup(f.Name).DefValue = f.DefValue
			}
		}
		shown.PrintDefaults()
	}
	return func() error {
		var extra []string
		fs.Visit(func(f *flag.Flag) {
			if !slices.Contains(allowed, f.Name) {
				extra = append(extra, "--"+f.Name)
			}
		})
		if len(extra) > 0 {
			return &exitError{2, fmt.Errorf("%s does not take %s (see %s -h)", fs.Name(), strings.Join(extra, ", "), "kura "+fs.Name())}
		}
		return nil
	}
}
