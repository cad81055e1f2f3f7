//go:build !cgo

package seal

import "errors"

// github.com/miekg/pkcs11 loads the module with dlopen and calls it through
// cgo, so a binary built with CGO_ENABLED=0 cannot use an HSM. Rather than
// making the whole seal package (and every pure-Go build of kura) fail to
// compile, such a build has this stub, which refuses at run time.

var errPKCS11NoCgo = errors.New("pkcs11: this kura binary was built without cgo (CGO_ENABLED=0); the PKCS#11 root needs a cgo build")

// PKCS11Root is unavailable in builds without cgo; see pkcs11.go.
type PKCS11Root struct{}

var _ Root = (*PKCS11Root)(nil)

// OpenPKCS11Root always fails in a build without cgo.
func OpenPKCS11Root(cfg PKCS11Config) (*PKCS11Root, error) { return nil, errPKCS11NoCgo }

// Wrap implements Root; it always fails in a build without cgo.
func (r *PKCS11Root) Wrap(dek, aad []byte) ([]byte, error) { return nil, errPKCS11NoCgo }

// Unwrap implements Root; it always fails in a build without cgo.
func (r *PKCS11Root) Unwrap(wrapped, aad []byte) ([]byte, error) { return nil, errPKCS11NoCgo }

// Close does nothing in a build without cgo.
func (r *PKCS11Root) Close() error { return nil }
