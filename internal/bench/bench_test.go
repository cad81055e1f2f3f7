package bench

import (
	"context"
	"strings"
	"testing"
)

// parallel runs op b.N times from the parallel goroutines, stopping at the
// first error.
func parallel(b *testing.B, op func() error) {
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := op(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkAttestHTTPS measures POST /attest/SevSnpVm over HTTPS against an
// in-process dev server (cached VCEK chain and table), b.N requests from
// GOMAXPROCS*2 clients; BenchmarkAttestFloor measures the floor it is
// compared with (crypto/ecdsa verify + token signature) and kura's own
// crypto (table verify + token signature).
func BenchmarkAttestHTTPS(b *testing.B) {
	for _, alg := range []string{"RS256", "ES256"} {
		b.Run(alg, func(b *testing.B) {
			ctx := context.Background()
			rig, err := StartAttest(ctx, b.TempDir(), alg)
			if err != nil {
				b.Fatal(err)
			}
			defer func() { b.StopTimer(); rig.Close() }()
			if err := rig.Warm(); err != nil {
				b.Fatal(err)
			}
			b.SetParallelism(2)
			b.ResetTimer()
			parallel(b, func() error { return rig.Attest(ctx) })
		})
	}
}

func BenchmarkAttestFloor(b *testing.B) {
	for _, alg := range []string{"RS256", "ES256"} {
		b.Run(alg, func(b *testing.B) {
			ctx := context.Background()
			rig, err := StartAttest(ctx, b.TempDir(), alg)
			if err != nil {
				b.Fatal(err)
			}
			defer func() { b.StopTimer(); rig.Close() }()
			for _, v := range []struct {
				name string
				make func() (func() error, error)
			}{{"crypto-ecdsa", rig.FloorOp}, {"kura-table", rig.TableFloorOp}} {
				op, err := v.make()
				if err != nil {
					b.Fatal(err)
				}
				b.Run(v.name, func(b *testing.B) {
					b.SetParallelism(2)
					parallel(b, op)
				})
			}
		})
	}
}

// BenchmarkKeys measures each key operation over HTTPS and its raw crypto
// floor (kura bench keys prints the same pair).
func BenchmarkKeys(b *testing.B) {
	ctx := context.Background()
	rig, err := StartKeys(ctx, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer rig.Close()
	ops, err := rig.Ops(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for _, op := range ops {
		for _, v := range []struct {
			kind string
			f    func() error
		}{{"https", op.HTTPS}, {"floor", op.Floor}} {
			b.Run(strings.ReplaceAll(op.Name, " ", "_")+"/"+v.kind, func(b *testing.B) {
				b.SetParallelism(2)
				parallel(b, v.f)
			})
		}
	}
}

// BenchmarkRelease measures attestation plus release over HTTPS and its floor.
func BenchmarkRelease(b *testing.B) {
	ctx := context.Background()
	rig, err := StartRelease(ctx, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer func() { b.StopTimer(); rig.Close() }()
	floor, err := rig.ReleaseFloor()
	if err != nil {
		b.Fatal(err)
	}
	for _, v := range []struct {
		name string
		f    func() error
	}{{"https", func() error { return rig.Release(ctx) }}, {"floor", floor}} {
		b.Run(v.name, func(b *testing.B) {
			b.SetParallelism(2)
			parallel(b, v.f)
		})
	}
}

// BenchmarkAttestLean is BenchmarkAttestHTTPS with the lean load generator.
func BenchmarkAttestLean(b *testing.B) {
	for _, alg := range []string{"RS256", "ES256"} {
		b.Run(alg, func(b *testing.B) {
			rig, err := StartAttest(context.Background(), b.TempDir(), alg)
			if err != nil {
				b.Fatal(err)
			}
			defer func() { b.StopTimer(); rig.Close() }()
			if err := rig.Warm(); err != nil {
				b.Fatal(err)
			}
			b.SetParallelism(2)
			b.ResetTimer()
			parallel(b, rig.AttestLean)
		})
	}
}

// BenchmarkAttestIntel measures POST /attest/TdxVm and /attest/SgxEnclave
// over HTTPS (simulated evidence, collateral cached) with the lean load
// generator, and their floor (quote and QE report P-256 verify + ES256
// token), as `kura bench attest --tee tdx|sgx` prints them.
func BenchmarkAttestIntel(b *testing.B) {
	for _, tee := range []string{"tdx", "sgx"} {
		b.Run(tee, func(b *testing.B) {
			ctx := context.Background()
			rig, err := StartIntel(ctx, b.TempDir(), "ES256", tee)
			if err != nil {
				b.Fatal(err)
			}
			defer func() { b.StopTimer(); rig.Close() }()
			if err := rig.Warm(); err != nil {
				b.Fatal(err)
			}
			floor, err := rig.FloorOp()
			if err != nil {
				b.Fatal(err)
			}
			b.Run("https", func(b *testing.B) { b.SetParallelism(2); parallel(b, rig.AttestLean) })
			b.Run("floor", func(b *testing.B) { b.SetParallelism(2); parallel(b, floor) })
		})
	}
}
