package keyops

import (
	"crypto/sha256"
	"testing"
)

func BenchmarkSign(b *testing.B) {
	digest := sha256.Sum256([]byte("benchmark"))
	for _, c := range []struct{ name, key, alg string }{
		{"RS256-2048", "RSA-2048", "RS256"},
		{"ES256", "EC-P-256", "ES256"},
	} {
		m := keyNamed(b, c.key)
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := Sign(m, c.alg, digest[:]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecrypt(b *testing.B) {
	m := keyNamed(b, "RSA-2048")
	res, err := Encrypt(m, "RSA-OAEP-256", make([]byte, 32), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("RSA-OAEP-256-2048", func(b *testing.B) {
		for b.Loop() {
			if _, err := Decrypt(m, "RSA-OAEP-256", res.Value, nil, nil, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkWrapKey(b *testing.B) {
	cek := make([]byte, 32)
	for _, c := range []struct{ name, key, alg string }{
		{"RSA-OAEP-256-2048", "RSA-2048", "RSA-OAEP-256"},
		{"A256KW", "oct-256", "A256KW"},
	} {
		m := keyNamed(b, c.key)
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := WrapKey(m, c.alg, cek); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
