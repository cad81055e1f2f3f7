package evidence

import (
	"bytes"
	"testing"
)

// FuzzCertTablePEM feeds arbitrary host-controlled tables to the parser. It
// must never panic, and whatever it accepts must be a leaf-first chain of at
// most three parseable certificates, produced deterministically.
func FuzzCertTablePEM(f *testing.F) {
	// The seed corpus lives in testdata/fuzz/FuzzCertTablePEM (valid
	// tables with small certificates, and each kind of malformation).
	f.Fuzz(func(t *testing.T, table []byte) {
		for _, leaf := range []leafChoice{leafAuto, leafVCEK, leafVLEK} {
			out, err := certTablePEM(table, leaf)
			if err != nil {
				if out != nil {
					t.Fatalf("leaf %d: output %q returned with error %v", leaf, out, err)
				}
				continue
			}
			if out == nil {
				continue // no known certificates in the table
			}
			if n := len(pemChain(t, out)); n == 0 || n > 3 {
				t.Fatalf("leaf %d: chain of %d certificates, want 1..3", leaf, n)
			}
			again, err := certTablePEM(table, leaf)
			if err != nil || !bytes.Equal(again, out) {
				t.Fatalf("leaf %d: second conversion differs (err %v)", leaf, err)
			}
		}
		// The public entry point is the automatic choice.
		pub, pubErr := CertTablePEM(table)
		auto, autoErr := certTablePEM(table, leafAuto)
		if (pubErr == nil) != (autoErr == nil) || !bytes.Equal(pub, auto) {
			t.Fatalf("CertTablePEM disagrees with the automatic leaf choice")
		}
	})
}
