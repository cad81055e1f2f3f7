// Package ratelimit holds token buckets that bound how fast clients may
// call kura's unauthenticated, costly routes (an attestation is a
// signature verification; a token request a database write): one bucket
// per client and one for everyone.
package ratelimit

import (
	"math"
	"sync"
	"time"
)

// Limiter admits requests at a per-client and a global rate, each with a
// burst of one second's worth (at least one request).
type Limiter struct {
	perClient, global float64 // requests per second; 0: unlimited
	now               func() time.Time

	mu      sync.Mutex
	all     bucket
	clients map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

// maxClients bounds the per-client table; when full, buckets that have
// refilled (clients idle for at least a second) are dropped.
const maxClients = 65536

// New returns a limiter; a rate of 0 does not limit.
func New(perClient, global float64, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{perClient: perClient, global: global, now: now, clients: map[string]*bucket{}}
}

func burst(rate float64) float64 { return math.Max(1, rate) }

// take refills b at rate and takes one token, or says how long until one
// is there.
func take(b *bucket, rate float64, now time.Time) (bool, time.Duration) {
	if b.at.IsZero() {
		b.tokens, b.at = burst(rate), now
	}
	if el := now.Sub(b.at).Seconds(); el > 0 {
		b.tokens = math.Min(burst(rate), b.tokens+el*rate)
		b.at = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / rate * float64(time.Second))
}

// Allow admits one request of client, or returns how long to wait. A
// request refused by the global bucket takes nothing from the client's.
func (l *Limiter) Allow(client string) (bool, time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	var cb *bucket
	if l.perClient > 0 {
		cb = l.clients[client]
		if cb == nil {
			if len(l.clients) >= maxClients {
				l.sweep(now)
			}
			cb = &bucket{}
			l.clients[client] = cb
		}
		// Peek: refill without taking, so a global refusal costs the
		// client nothing.
		probe := *cb
		if ok, wait := take(&probe, l.perClient, now); !ok {
			*cb = probe
			return false, wait
		}
	}
	if l.global > 0 {
		if ok, wait := take(&l.all, l.global, now); !ok {
			return false, wait
		}
	}
	if cb != nil {
		take(cb, l.perClient, now)
	}
	return true, 0
}

// sweep drops the buckets of clients that are full again; if none are,
// the table starts over (a flood of new addresses must not grow it).
func (l *Limiter) sweep(now time.Time) {
	for c, b := range l.clients {
		if b.tokens+now.Sub(b.at).Seconds()*l.perClient >= burst(l.perClient) {
			delete(l.clients, c)
		}
	}
	if len(l.clients) >= maxClients {
		clear(l.clients)
	}
}
