// Package tees is the list of TEEs kura verifies: one Register line each.
// The server, the configuration and the CLI range over the registry it
// returns and name no TEE themselves.
package tees

import (
	"github.com/kura-project/kura/internal/attest"
	"github.com/kura-project/kura/internal/attest/openenclave"
	"github.com/kura-project/kura/internal/attest/sevsnpvm"
	"github.com/kura-project/kura/internal/attest/sgxenclave"
	"github.com/kura-project/kura/internal/attest/tdxvm"
)

// Registry returns a registry with every TEE kura supports.
func Registry() *attest.Registry {
	r := attest.NewRegistry()
	for _, m := range []attest.Module{
		sevsnpvm.Module(),
		tdxvm.Module(),
		sgxenclave.Module(),
		openenclave.Module(),
	} {
		if err := r.Register(m); err != nil {
			panic(err) // a programming error, caught by this package's test
		}
	}
	return r
}
