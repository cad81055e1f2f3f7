// Package bench measures kura end to end over HTTPS next to the floor its
// cryptography sets, both in the same run on the same machine, so a figure
// is always read against what the hardware could do at best.
package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kura-project/kura/internal/attest/sim"
	"github.com/kura-project/kura/internal/attest/snp"
	"github.com/kura-project/kura/internal/config"
	"github.com/kura-project/kura/internal/p384"
	"github.com/kura-project/kura/internal/server"
)

// Result is one measured run.
type Result struct {
	Ops      int
	Errors   int
	Duration time.Duration
	P50, P99 time.Duration
	CPU      time.Duration // process CPU time (user+system) spent during the run
}

// CPUPerOp is the process CPU time per operation.
func (r Result) CPUPerOp() time.Duration {
	if r.Ops == 0 {
		return 0
	}
	return r.CPU / time.Duration(r.Ops)
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// PerSecond is the throughput.
func (r Result) PerSecond() float64 { return float64(r.Ops) / r.Duration.Seconds() }

// Run calls op from clients goroutines for d and records latencies. The
// first error is returned with the result; errors are counted, not retried.
func Run(ctx context.Context, clients int, d time.Duration, op func() error) (Result, error) {
	var mu sync.Mutex
	var lat []time.Duration
	var errs atomic.Int64
	var firstErr error
	deadline := time.Now().Add(d)
	start := time.Now()
	cpu0 := cpuTime()
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 1024)
			for time.Now().Before(deadline) && ctx.Err() == nil {
				t := time.Now()
				if err := op(); err != nil {
					errs.Add(1)
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					continue
				}
				local = append(local, time.Since(t))
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	res := Result{Ops: len(lat), Errors: int(errs.Load()), Duration: time.Since(start), CPU: cpuTime() - cpu0}
	if len(lat) > 0 {
		slices.Sort(lat)
		res.P50 = lat[len(lat)/2]
		res.P99 = lat[min(len(lat)-1, len(lat)*99/100)]
	}
	return res, firstErr
}

// AttestRig is a running in-process kura (dev mode, simulated TEE trusted)
// with an HTTPS client and a simulated evidence body.
type AttestRig struct {
	URL    string
	Client *http.Client
	Body   []byte
	Alg    string

	authority *sim.Authority
	report    *snp.Report
	tlsConfig *tls.Config
	lean      *LeanClient
	cancel    context.CancelFunc
	done      chan error
	srv       *server.Server
}

// StartAttest starts kura on 127.0.0.1 with tokens signed with alg.
func StartAttest(ctx context.Context, dir, alg string) (*AttestRig, error) {
	cfg := config.Default()
	cfg.Addr, cfg.DataDir, cfg.Dev, cfg.TokenAlg = "127.0.0.1:0", dir, true, alg
	cfg.Issuer = "https://127.0.0.1"
	log := slog.New(slog.DiscardHandler)
	srv, err := server.New(ctx, cfg, log, time.Now)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(ctx)
	addrc := make(chan net.Addr, 1)
	rig := &AttestRig{Alg: alg, cancel: cancel, done: make(chan error, 1), srv: srv}
	go func() { rig.done <- srv.Serve(rctx, func(a net.Addr) { addrc <- a }) }()
	select {
	case a := <-addrc:
		rig.URL = "https://" + a.String()
	case err := <-rig.done:
		cancel()
		srv.Close()
		return nil, err
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "tls", "ca.pem"))
	if err != nil {
		rig.Close()
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	rig.tlsConfig = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	rig.Client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256,
	}}
	if rig.authority, err = sim.Load(filepath.Join(dir, "sim")); err != nil {
		rig.Close()
		return nil, err
	}
	runtime := []byte(`{"keys":[{"kid":"bench","kty":"RSA","e":"AQAB","n":"` + strings.Repeat("A", 342) + `"}]}`)
	var rd [64]byte
	sum := sha256.Sum256(runtime)
	copy(rd[:], sum[:])
	raw, err := rig.authority.Report(sim.Options{ReportData: rd})
	if err != nil {
		rig.Close()
		return nil, err
	}
	if rig.report, err = snp.ParseReport(raw); err != nil {
		rig.Close()
		return nil, err
	}
	if rig.Body, err = sim.RequestBody(raw, rig.authority.ChainPEM(), runtime, "JSON", ""); err != nil {
		rig.Close()
		return nil, err
	}
	rig.lean = NewLeanClient(rig.URL, rig.tlsConfig, "/attest/SevSnpVm?api-version=2025-06-01", rig.Body, "")
	return rig, nil
}

// Close stops the server.
func (r *AttestRig) Close() {
	if r.Client != nil {
		r.Client.CloseIdleConnections() // lets the server's graceful shutdown finish at once
	}
	if r.lean != nil {
		r.lean.Close()
	}
	r.cancel()
	<-r.done
	r.srv.Close()
}

// Warm sends the evidence three times: the first verifies and caches the
// VCEK chain, a later one gives the VCEK its precomputed table, so what is
// measured next is the steady state.
func (r *AttestRig) Warm() error {
	for range 3 {
		if err := r.AttestLean(); err != nil {
			return err
		}
	}
	return nil
}

// AttestLean sends the evidence once through the lean load generator.
func (r *AttestRig) AttestLean() error { return r.lean.Do(`"token"`) }

// Attest sends the evidence once and checks for a token.
func (r *AttestRig) Attest(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL+"/attest/SevSnpVm?api-version=2025-06-01", strings.NewReader(string(r.Body)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("attest: %s: %s", resp.Status, b)
	}
	if !strings.Contains(string(b), `"token"`) {
		return errors.New("attest: no token in the answer")
	}
	return nil
}

// FloorOp returns one unit of the attestation floor: one ECDSA P-384 report
// signature verification (crypto/ecdsa) plus one token signature with alg,
// over a token payload of realistic size.
func (r *AttestRig) FloorOp() (func() error, error) { return r.floorOp(false) }

// TableFloorOp is FloorOp with the report signature verified the way kura
// verifies reports from a hot endorsement key (a precomputed table, see
// package p384): kura's own cryptographic cost per attestation, so the
// overhead around it stays visible next to the figure.
func (r *AttestRig) TableFloorOp() (func() error, error) { return r.floorOp(true) }

func (r *AttestRig) floorOp(table bool) (func() error, error) {
	verify, err := reportVerifier(r.authority, r.report, table)
	if err != nil {
		return nil, err
	}
	sign, err := Signer(r.Alg)
	if err != nil {
		return nil, err
	}
	payload := make([]byte, 2400)
	return func() error {
		if err := verify(); err != nil {
			return err
		}
		return sign(payload)
	}, nil
}

// reportVerifier checks rep's signature with the simulated VCEK, through a
// precomputed table or with crypto/ecdsa.
func reportVerifier(a *sim.Authority, rep *snp.Report, table bool) (func() error, error) {
	pub, ok := a.VCEK.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return nil, errors.New("simulated VCEK is not ECDSA")
	}
	if !table {
		return func() error { return snp.VerifySignature(rep, pub) }, nil
	}
	k, err := p384.NewKey(pub)
	if err != nil {
		return nil, err
	}
	return func() error { return snp.VerifySignatureTable(rep, k) }, nil
}

// Signer returns a function that makes one JWS signature with a fresh key of
// alg, the way the token keyring signs.
func Signer(alg string) (func([]byte) error, error) {
	switch alg {
	case "RS256":
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		return func(p []byte) error {
			d := sha256.Sum256(p)
			_, err := k.Sign(rand.Reader, d[:], crypto.SHA256)
			return err
		}, nil
	case "ES256":
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		return func(p []byte) error {
			d := sha256.Sum256(p)
			_, err := ecdsa.SignASN1(rand.Reader, k, d[:])
			return err
		}, nil
	case "ES384":
		k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		if err != nil {
			return nil, err
		}
		return func(p []byte) error {
			d := sha512.Sum384(p)
			_, err := ecdsa.SignASN1(rand.Reader, k, d[:])
			return err
		}, nil
	}
	return nil, fmt.Errorf("unknown alg %q", alg)
}

func readAdmin(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "dev", "admin-token"))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// Comparison is an operation measured next to its floor.
type Comparison struct {
	Floor         float64 // ops/s: mean of the floor measured before and after
	Before, After Result  // the two floor runs
	Result        Result  // the operation
	// Own is the operation's own cryptography (CompareOwn), measured the
	// same way as the floor: ops/s, mean of before and after.
	Own                 float64
	OwnBefore, OwnAfter Result
}

// Ratio is the operation's throughput as a fraction of the floor.
func (c Comparison) Ratio() float64 { return c.Result.PerSecond() / c.Floor }

// Compare measures floor for d/2, op for d, floor again for d/2: the
// machines are shared and drift by ±15 %, so the floor brackets the run.
func Compare(ctx context.Context, clients int, d time.Duration, floor, op func() error) (Comparison, error) {
	return CompareOwn(ctx, clients, d, floor, nil, op)
}

// CompareOwn is Compare with a second reference, own (nil: none), measured
// like the floor: before and after op, d/2 each.
func CompareOwn(ctx context.Context, clients int, d time.Duration, floor, own, op func() error) (Comparison, error) {
	var c Comparison
	var err error
	if c.Before, err = Run(ctx, clients, d/2, floor); err != nil {
		return c, fmt.Errorf("floor: %w", err)
	}
	if own != nil {
		if c.OwnBefore, err = Run(ctx, clients, d/2, own); err != nil {
			return c, fmt.Errorf("own crypto: %w", err)
		}
	}
	if c.Result, err = Run(ctx, clients, d, op); err != nil {
		return c, fmt.Errorf("%w (after %d successes)", err, c.Result.Ops)
	}
	if own != nil {
		if c.OwnAfter, err = Run(ctx, clients, d/2, own); err != nil {
			return c, fmt.Errorf("own crypto: %w", err)
		}
		c.Own = (c.OwnBefore.PerSecond() + c.OwnAfter.PerSecond()) / 2
	}
	if c.After, err = Run(ctx, clients, d/2, floor); err != nil {
		return c, fmt.Errorf("floor: %w", err)
	}
	c.Floor = (c.Before.PerSecond() + c.After.PerSecond()) / 2
	if c.Floor == 0 || (own != nil && c.Own == 0) {
		return c, errors.New("a reference measured zero operations")
	}
	return c, nil
}

// leanConn is one keep-alive HTTPS connection of the load generator. The
// generator writes prebuilt HTTP/1.1 requests and reads answers with a
// minimal parser, so that its own CPU cost — which shares the machine with
// the server under test — stays small (wrk's approach, in Go).
type leanConn struct {
	c *tls.Conn
	r *bufio.Reader
}

// LeanClient posts one fixed request over a pool of keep-alive connections.
type LeanClient struct {
	addr string
	tls  *tls.Config
	req  []byte
	pool chan *leanConn
}

// NewLeanClient prepares POST path with body to the server at rawURL.
func NewLeanClient(rawURL string, cfg *tls.Config, path string, body []byte, header string) *LeanClient {
	host := strings.TrimPrefix(rawURL, "https://")
	req := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n", path, host, header, len(body))
	return &LeanClient{addr: host, tls: cfg, req: append([]byte(req), body...), pool: make(chan *leanConn, 256)}
}

// Do sends the request once and checks for a 200 answer containing want.
func (l *LeanClient) Do(want string) error {
	var lc *leanConn
	select {
	case lc = <-l.pool:
	default:
		c, err := tls.Dial("tcp", l.addr, l.tls)
		if err != nil {
			return err
		}
		lc = &leanConn{c: c, r: bufio.NewReaderSize(c, 16<<10)}
	}
	body, status, err := lc.roundTrip(l.req)
	if err != nil {
		lc.c.Close()
		return err
	}
	if status != 200 || !bytes.Contains(body, []byte(want)) {
		lc.c.Close()
		return fmt.Errorf("answer %d: %.200s", status, body)
	}
	select {
	case l.pool <- lc:
	default:
		lc.c.Close()
	}
	return nil
}

// Close closes the pooled connections.
func (l *LeanClient) Close() {
	for {
		select {
		case lc := <-l.pool:
			lc.c.Close()
		default:
			return
		}
	}
}

func (lc *leanConn) roundTrip(req []byte) ([]byte, int, error) {
	if _, err := lc.c.Write(req); err != nil {
		return nil, 0, err
	}
	line, err := lc.r.ReadSlice('\n')
	if err != nil {
		return nil, 0, err
	}
	if len(line) < 12 {
		return nil, 0, errors.New("short status line")
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return nil, 0, err
	}
	n := -1
	for {
		h, err := lc.r.ReadSlice('\n')
		if err != nil {
			return nil, 0, err
		}
		if len(h) <= 2 {
			break
		}
		if k, v, ok := bytes.Cut(h, []byte(":")); ok && bytes.EqualFold(k, []byte("Content-Length")) {
			if n, err = strconv.Atoi(string(bytes.TrimSpace(v))); err != nil {
				return nil, 0, err
			}
		}
	}
	if n < 0 {
		return nil, 0, errors.New("answer without Content-Length")
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(lc.r, body); err != nil {
		return nil, 0, err
	}
	return body, status, nil
}
