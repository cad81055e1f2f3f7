package intel

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kura-project/kura/internal/attest"
	"github.com/kura-project/kura/internal/fetch"
)

// Intel's services.
const (
	DefaultPCS        = "https://api.trustedservices.intel.com"
	DefaultRootCRLURL = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"
)

// maxAnswer bounds one PCS answer (TCB infos are a few kB, CRLs less).
const maxAnswer = 1 << 20

// PCS fetches a platform's collateral from Intel's Provisioning
// Certification Service (API v4), as Intel's quote providers do: the TCB
// info, the QE identity, both PCK CRLs and the root CA CRL, with the
// issuer chains of their headers. What it returns is assembled bundles,
// to be imported (and so verified) like any other.
type PCS struct {
	Base       string        // DefaultPCS unless set
	RootCRLURL string        // DefaultRootCRLURL unless set
	Timeout    time.Duration // of the whole fetch (five requests); 10s unless set
	Client     *http.Client  // http.DefaultClient unless set
}

// Fetch returns the bundles for tee ("TDX" or "SGX") and fmspc.
func (p *PCS) Fetch(ctx context.Context, tee, fmspc string) ([][]byte, error) {
	base := strings.TrimSuffix(p.Base, "/")
	if base == "" {
		base = DefaultPCS
	}
	rootURL := p.RootCRLURL
	if rootURL == "" {
		rootURL = DefaultRootCRLURL
	}
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := strings.ToLower(tee)
	var files [][]byte
	get := func(u, chainHeader string, optional bool) error {
		body, chain, err := p.get(ctx, u, chainHeader)
		if err != nil {
			if optional {
				return nil
			}
			return err
		}
		files = append(files, body)
		if chain != nil {
			files = append(files, chain)
		}
		return nil
	}
	for _, r := range []struct {
		url, header string
		optional    bool
	}{
		{base + "/" + t + "/certification/v4/tcb?fmspc=" + url.QueryEscape(fmspc), "TCB-Info-Issuer-Chain", false},
		{base + "/" + t + "/certification/v4/qe/identity", "SGX-Enclave-Identity-Issuer-Chain", false},
		// A platform's PCK is issued by one of the two CAs; either CRL
		// may be missing from a mirror, not both (AssemblePCS says so).
		{base + "/sgx/certification/v4/pckcrl?ca=platform&encoding=der", "SGX-PCK-CRL-Issuer-Chain", true},
		{base + "/sgx/certification/v4/pckcrl?ca=processor&encoding=der", "SGX-PCK-CRL-Issuer-Chain", true},
		{rootURL, "", false},
	} {
		if err := get(r.url, r.header, r.optional); err != nil {
			return nil, fmt.Errorf("intel PCS: %w", err)
		}
	}
	bundles, _, err := AssemblePCS(files)
	if err != nil {
		return nil, err
	}
	if len(bundles) == 0 {
		return nil, fmt.Errorf("intel PCS: no TCB info for FMSPC %s", fmspc)
	}
	return bundles, nil
}

// get fetches u (the whole fetch's deadline is on ctx); chainHeader names
// the header holding the issuer chain (URL-escaped PEM), returned
// unescaped.
func (p *PCS) get(ctx context.Context, u, chainHeader string) (body, chain []byte, err error) {
	a, err := fetch.Get(ctx, p.Client, u, time.Hour, maxAnswer)
	if err != nil {
		return nil, nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if a.Status != http.StatusOK {
		return nil, nil, fmt.Errorf("GET %s: %s", u, a.Text)
	}
	if chainHeader != "" {
		h := a.Header.Get(chainHeader)
		s, err := url.QueryUnescape(h)
		if h == "" || err != nil {
			return nil, nil, fmt.Errorf("GET %s: no readable %s header", u, chainHeader)
		}
		chain = []byte(s)
	}
	return a.Body, chain, nil
}

// fetchMemo remembers recent failed fetches, so a platform Intel does not
// know is not asked for on every quote.
type fetchMemo struct {
	mu     sync.Mutex
	missed map[string]time.Time
}

const missTTL = 10 * time.Minute

func (m *fetchMemo) recent(k string, now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.missed[k]
	return ok && now.Sub(t) < missTTL && now.Sub(t) >= 0
}

func (m *fetchMemo) miss(k string, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.missed == nil || len(m.missed) > maxCached {
		m.missed = map[string]time.Time{}
	}
	m.missed[k] = now
}

// Settings of Intel's PCS fetch, owned by the TdxVm module and read by
// the SGX modules too.
var PCSSettings = []attest.Setting{
	{Key: "intel_pcs_fetch", Kind: attest.Bool, Default: "false", Flag: true, Usage: "fetch missing or expired Intel collateral (TDX and SGX) from Intel's PCS"},
	{Key: "intel_pcs_url", Kind: attest.String, Default: DefaultPCS, Usage: "Intel PCS base URL (or a PCCS's, API v4)"},
	{Key: "intel_pcs_timeout", Kind: attest.Duration, Default: "10s", Usage: "timeout of one fetch from Intel's PCS"},
}

// PCSFromSettings is the configured fetcher, or nil when fetching is off.
func PCSFromSettings(get func(string) string) (*PCS, error) {
	if get == nil {
		return nil, nil
	}
	on := false
	if v := get("intel_pcs_fetch"); v != "" {
		var err error
		if on, err = strconv.ParseBool(v); err != nil {
			return nil, fmt.Errorf("intel_pcs_fetch %q: not a boolean", v)
		}
	}
	if !on {
		return nil, nil
	}
	p := &PCS{Base: get("intel_pcs_url")}
	if v := get("intel_pcs_timeout"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("intel_pcs_timeout %q: want a positive duration such as \"10s\"", v)
		}
		p.Timeout = d
	}
	if p.Base != "" {
		if u, err := url.Parse(p.Base); err != nil || u.Scheme != "https" && u.Hostname() != "127.0.0.1" && u.Hostname() != "localhost" {
			return nil, fmt.Errorf("intel_pcs_url %q: want an https URL", p.Base)
		}
	}
	return p, nil
}
