package evidence

import (
	"context"
	"encoding/base64"
	"errors"
	"testing"
)

// TestSNPEvidence pins the SevSnpVm encoding: the report member is the
// base64url of {"SnpReport": base64url(report), "VcekCertChain":
// base64(PEM)}, the chain left out when the host gave none.
func TestSNPEvidence(t *testing.T) {
	for name, tc := range map[string]struct {
		snp  SNP
		want string
	}{
		"with chain": {SNP{Report: []byte{0xfb, 0xff}, CertChainPEM: []byte("PEM"), Provider: ProviderSevGuest},
			`{"SnpReport":"-_8","VcekCertChain":"UEVN"}`},
		"no chain": {SNP{Report: []byte{1}, Provider: ProviderConfigfsTSM}, `{"SnpReport":"AQ"}`},
	} {
		ev, err := tc.snp.Evidence()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if ev.Type != "SevSnpVm" || ev.Member != "report" || ev.Provider != tc.snp.Provider {
			t.Errorf("%s: evidence %+v", name, ev)
		}
		if b, err := base64.RawURLEncoding.DecodeString(ev.Body); err != nil || string(b) != tc.want {
			t.Errorf("%s: body %s (%v), want %s", name, b, err, tc.want)
		}
	}
}

type snpFunc func(context.Context, [64]byte) (*SNP, error)

func (f snpFunc) SNPReport(ctx context.Context, rd [64]byte) (*SNP, error) { return f(ctx, rd) }

func TestFromSNP(t *testing.T) {
	boom := errors.New("boom")
	if ev, err := FromSNP(context.Background(), snpFunc(func(context.Context, [64]byte) (*SNP, error) { return nil, boom }), [64]byte{}); ev != nil || !errors.Is(err, boom) {
		t.Errorf("FromSNP of a failing source = %v, %v", ev, err)
	}
	ev, err := FromSNP(context.Background(), snpFunc(func(_ context.Context, rd [64]byte) (*SNP, error) {
		return &SNP{Report: rd[:2], Provider: "p"}, nil
	}), [64]byte{1, 2})
	if err != nil || ev.Body != base64.RawURLEncoding.EncodeToString([]byte(`{"SnpReport":"AQI"}`)) || ev.Provider != "p" {
		t.Errorf("FromSNP = %+v, %v", ev, err)
	}
}

// The kernel sources are Sources.
var (
	_ Source = (*ConfigfsTSM)(nil)
	_ Source = (*SevGuestDevice)(nil)
)
