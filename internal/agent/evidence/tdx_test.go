package evidence

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io/fs"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-configfs-tsm/configfs/configfsi"
	"github.com/google/go-configfs-tsm/configfs/faketsm"

	"github.com/kura-project/kura/internal/attest/intelsim"
	"github.com/kura-project/kura/internal/attest/tdx"
)

// fakeTDXTSM is a configfs-tsm report subsystem that behaves like the
// tdx_guest provider: inblob is the only attribute to write (no
// privlevel), the outblob a quote over it, from the simulated Intel
// authority.
func fakeTDXTSM(t *testing.T, a *intelsim.Authority, provider string, outblob func(rd [64]byte) []byte) (*faketsm.ReportSubsystem, configfsi.Client) {
	sub := &faketsm.ReportSubsystem{
		MakeEntry: func() *faketsm.ReportEntry {
			return &faketsm.ReportEntry{
				InAttrs: map[string]*faketsm.ReportAttributeState{"inblob": {}},
				ROAttrs: map[string][]byte{"provider": []byte(provider + "\n")},
			}
		},
		CheckInAttr: func(_ *faketsm.ReportEntry, attr string, contents []byte) error {
			if attr != "inblob" {
				return fmt.Errorf("the TDX provider has no writable attribute %q", attr)
			}
			if len(contents) > 64 {
				return syscall.EINVAL
			}
			return nil
		},
		ReadAttr: func(e *faketsm.ReportEntry, attr string) ([]byte, error) {
			switch attr {
			case "provider":
				return []byte(provider + "\n"), nil
			case "outblob":
				var rd [64]byte
				copy(rd[:], e.InAttrs["inblob"].Value)
				if outblob != nil {
					return outblob(rd), nil
				}
				q, err := a.TDXQuote(intelsim.TDXOptions{ReportData: rd})
				if err != nil {
					t.Fatal(err)
				}
				return q, nil
			}
			return nil, fs.ErrNotExist
		},
		Random: rand.Reader,
	}
	return sub, &faketsm.Client{Subsystems: map[string]configfsi.Client{"report": sub}}
}

// TestTDXConfigfs: the TDX source writes only the inblob, returns the
// quote as TdxVm evidence that verifies and carries the report data, and
// removes its entry; another provider, an outblob that is no quote and a
// quote over other report data are refused.
func TestTDXConfigfs(t *testing.T) {
	now := time.Now()
	a, err := intelsim.New(now)
	if err != nil {
		t.Fatal(err)
	}
	var rd [64]byte
	copy(rd[:], "report data of the agent")
	ctx := context.Background()
	sub, client := fakeTDXTSM(t, a, "tdx_guest", nil)
	ev, err := (&TDXConfigfs{Client: client}).Evidence(ctx, rd)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Type != "TdxVm" || ev.Member != "quote" || !strings.Contains(ev.Provider, "tdx_guest") {
		t.Errorf("evidence %+v", ev)
	}
	raw, err := base64.RawURLEncoding.DecodeString(ev.Body)
	if err != nil {
		t.Fatal(err)
	}
	q, err := tdx.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tdx.Verify(q, tdx.Options{Roots: a.Roots(), Now: now}); err != nil || q.Body.ReportData != rd {
		t.Errorf("the quote: %v, report data %x", err, q.Body.ReportData)
	}
	if len(sub.Entries) != 0 {
		t.Errorf("%d report entries left behind", len(sub.Entries))
	}
	for _, c := range []struct {
		name, provider string
		outblob        func([64]byte) []byte
		want           string
	}{
		{"SEV-SNP guest", "sev_guest", nil, `report provider is "sev_guest", not "tdx_guest"`},
		{"not a quote", "tdx_guest", func([64]byte) []byte { return []byte("privlevel: 0\n") }, "the outblob is not a TDX quote"},
		{"other report data", "tdx_guest", func([64]byte) []byte {
			q, _ := a.TDXQuote(intelsim.TDXOptions{})
			return q
		}, "not the requested report data"},
	} {
		_, client := fakeTDXTSM(t, a, c.provider, c.outblob)
		if _, err := (&TDXConfigfs{Client: client}).Evidence(ctx, rd); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

// TestTDXConfigfsV5: a version 5 quote (TD report 1.5) is read the same.
func TestTDXConfigfsV5(t *testing.T) {
	a, err := intelsim.New(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, client := fakeTDXTSM(t, a, "tdx_guest", func(rd [64]byte) []byte {
		q, _ := a.TDXQuote(intelsim.TDXOptions{ReportData: rd, V5: true})
		return q
	})
	rd := [64]byte{63: 1}
	if _, err := (&TDXConfigfs{Client: client}).Evidence(context.Background(), rd); err != nil {
		t.Fatal(err)
	}
}

// FuzzTDXReportData: never a panic; what is returned is 64 bytes of the
// input.
func FuzzTDXReportData(f *testing.F) {
	a, err := intelsim.New(time.Now())
	if err != nil {
		f.Fatal(err)
	}
	for _, v5 := range []bool{false, true} {
		q, _ := a.TDXQuote(intelsim.TDXOptions{V5: v5})
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		rd, err := tdxReportData(b)
		if err == nil && (len(rd) != 64 || !strings.Contains(string(b), string(rd))) {
			t.Fatal("report data not from the input")
		}
	})
}
