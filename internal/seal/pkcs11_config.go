package seal

import "fmt"

// This file holds what the PKCS#11 root shares between builds with cgo
// (pkcs11.go) and without (pkcs11_nocgo.go), so configuration code compiles
// either way.

// PKCS11Config says where the root key lives.
type PKCS11Config struct {
	Module     string // path to the PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so
	TokenLabel string
	PIN        string // user PIN (never logged, never in errors)
	KeyLabel   string // label of the root key object, default "kura-root"
	// NoCreate refuses to create a missing root key: the caller's database
	// already holds data sealed under a root, and a new one would not open it.
	NoCreate bool
}

// DefaultPKCS11KeyLabel is the root key's label when PKCS11Config.KeyLabel
// is empty.
const DefaultPKCS11KeyLabel = "kura-root"

// String describes the configuration without the PIN, so that logging a
// config by accident does not log the unseal credential.
func (c PKCS11Config) String() string {
	pin := "<empty>"
	if c.PIN != "" {
		pin = "<redacted>"
	}
	return fmt.Sprintf("{Module:%q TokenLabel:%q PIN:%s KeyLabel:%q}", c.Module, c.TokenLabel, pin, c.KeyLabel)
}

// GoString is String for %#v, which would otherwise print the PIN.
func (c PKCS11Config) GoString() string { return "seal.PKCS11Config" + c.String() }
