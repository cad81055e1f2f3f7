package main

import (
	"runtime/debug"
	"testing"
)

func TestTuneGC(t *testing.T) {
	orig := debug.SetGCPercent(100)
	defer debug.SetGCPercent(orig)
	for _, c := range []struct {
		env  map[string]string
		want int
	}{
		{nil, defaultGCPercent},
		{map[string]string{"GOGC": "150"}, 100},
		{map[string]string{"GOMEMLIMIT": "1GiB"}, 100},
	} {
		debug.SetGCPercent(100)
		tuneGC(func(k string) string { return c.env[k] })
		if got := gcPercent(); got != c.want {
			t.Errorf("env %v: GOGC %d, want %d", c.env, got, c.want)
		}
	}
}
