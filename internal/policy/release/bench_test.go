package release

import "testing"

// BenchmarkEvaluate measures a release decision under the CVM policy (a) for
// a realistic SEV-SNP guest attestation token, explanation included.
func BenchmarkEvaluate(b *testing.B) {
	p, err := Parse([]byte(sampleA))
	if err != nil {
		b.Fatal(err)
	}
	claims := numbers(cvmGuestClaims)
	if d := p.Evaluate(weu, claims); !d.Allowed {
		b.Fatalf("benchmark token denied: %s", d)
	}
	b.ReportAllocs()
	for b.Loop() {
		p.Evaluate(weu, claims)
	}
}

// BenchmarkParse measures parsing the default CVM policy's shape.
func BenchmarkParse(b *testing.B) {
	data := []byte(sampleF)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}
