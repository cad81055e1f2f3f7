package bench

import (
	"context"
	"testing"
)

// BenchmarkAttestHTTPS measures POST /attest/SevSnpVm over HTTPS against an
// in-process dev server (cached VCEK chain), b.N requests from GOMAXPROCS*2
// clients; BenchmarkAttestFloor measures the floor it is compared with.
func BenchmarkAttestHTTPS(b *testing.B) {
	for _, alg := range []string{"RS256", "ES256"} {
		b.Run(alg, func(b *testing.B) {
			ctx := context.Background()
			rig, err := StartAttest(ctx, b.TempDir(), alg)
			if err != nil {
				b.Fatal(err)
			}
			defer func() { b.StopTimer(); rig.Close() }()
			if err := rig.Attest(ctx); err != nil {
				b.Fatal(err)
			}
			b.SetParallelism(2)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := rig.Attest(ctx); err != nil {
						b.Error(err)
						return
					}
				}
			})
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
			op, err := rig.FloorOp()
			if err != nil {
				b.Fatal(err)
			}
			b.SetParallelism(2)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := op(); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
