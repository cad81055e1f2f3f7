package ratelimit

import (
	"fmt"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestLimiter(t *testing.T) {
	clk := &clock{t: time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)}
	l := New(5, 8, clk.now)
	admitted := func(client string, n int) (int, time.Duration) {
		ok, last := 0, time.Duration(0)
		for range n {
			if a, wait := l.Allow(client); a {
				ok++
			} else {
				last = wait
			}
		}
		return ok, last
	}
	// A burst past the per-client rate: one second's worth is admitted.
	if ok, wait := admitted("a", 20); ok != 5 || wait <= 0 || wait > time.Second {
		t.Fatalf("client a: %d admitted, retry after %v", ok, wait)
	}
	// Another client is limited by what is left of the global bucket (8-5).
	if ok, _ := admitted("b", 20); ok != 3 {
		t.Fatalf("client b: %d admitted, want 3 (global)", ok)
	}
	// Refused requests cost nothing: after 0.2 s, a has one token again and
	// the global bucket 1.6.
	clk.t = clk.t.Add(200 * time.Millisecond)
	if ok, _ := admitted("a", 3); ok != 1 {
		t.Fatalf("client a after 200ms: %d admitted, want 1", ok)
	}
	// After a full second everything is back.
	clk.t = clk.t.Add(2 * time.Second)
	if ok, _ := admitted("c", 10); ok != 5 {
		t.Errorf("client c: %d", ok)
	}
}

func TestUnlimited(t *testing.T) {
	l := New(0, 0, nil)
	for range 1000 {
		if ok, _ := l.Allow("x"); !ok {
			t.Fatal("refused without limits")
		}
	}
}

func TestClientTableIsBounded(t *testing.T) {
	clk := &clock{t: time.Unix(0, 0)}
	l := New(1, 0, clk.now)
	for i := range maxClients + 10 {
		l.Allow(fmt.Sprint(i))
	}
	if n := len(l.clients); n > maxClients {
		t.Errorf("%d client buckets kept", n)
	}
	// The client that just spent its token is still limited.
	if ok, _ := l.Allow(fmt.Sprint(maxClients + 9)); ok {
		t.Error("a client's bucket was forgotten while it was empty")
	}
}
