package evidence

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-configfs-tsm/configfs/configfsi"
	"github.com/google/go-configfs-tsm/configfs/linuxtsm"
	"github.com/google/go-configfs-tsm/report"
)

// The TdxVm attestation type and its evidence member.
const (
	TypeTdxVm   = "TdxVm"
	MemberTdxVm = "quote"

	// tsmProviderTDX is the configfs-tsm provider name of the TDX guest
	// driver.
	tsmProviderTDX = "tdx_guest"
)

// TDXConfigfs gets TDX quotes through Linux configfs-tsm (kernel ≥ 6.7,
// the tdx-guest driver, which has the host's quoting enclave sign the TD
// report). TDX has no privilege levels and no auxblob: the quote carries
// its PCK certificate chain itself. Like ConfigfsTSM, each call uses its
// own report entry, removes it afterwards and retries busy refusals.
type TDXConfigfs struct {
	// Client performs the configfs file operations; nil means Linux's.
	Client configfsi.Client

	retry retryPolicy
}

// Evidence implements Source: a TDX quote whose REPORTDATA is reportData,
// as TdxVm evidence.
func (c *TDXConfigfs) Evidence(ctx context.Context, reportData [64]byte) (*Evidence, error) {
	client := c.Client
	if client == nil {
		var err error
		if client, err = linuxtsm.MakeClient(); err != nil {
			return nil, fmt.Errorf("evidence: %s: %s unavailable (needs Linux 6.7 or later with CONFIG_TSM_REPORTS and the tdx-guest driver): %w", ifaceConfigfs, TSMReportDir, err)
		}
	}
	var resp *report.Response
	attempts, err := withRetry(ctx, c.retry, func() error {
		var err error
		resp, err = tsmGet(client, &report.Request{InBlob: reportData[:]})
		return err
	})
	if err != nil {
		if transient(err) {
			return nil, fmt.Errorf("evidence: %s: %w (still busy after %d attempts)", ifaceConfigfs, err, attempts)
		}
		return nil, fmt.Errorf("evidence: %s: %w%s", ifaceConfigfs, err, tdxHint(err))
	}
	if p := strings.TrimSpace(resp.Provider); p != tsmProviderTDX {
		return nil, fmt.Errorf("evidence: %s: report provider is %q, not %q; this is not a TDX guest", ifaceConfigfs, p, tsmProviderTDX)
	}
	got, err := tdxReportData(resp.OutBlob)
	if err != nil {
		return nil, fmt.Errorf("evidence: %s: the outblob is not a TDX quote: %w", ifaceConfigfs, err)
	}
	if !bytes.Equal(got, reportData[:]) {
		return nil, fmt.Errorf("evidence: %s: the quote's REPORTDATA is not the requested report data (another process wrote the entry?)", ifaceConfigfs)
	}
	return &Evidence{Type: TypeTdxVm, Member: MemberTdxVm, Body: base64.RawURLEncoding.EncodeToString(resp.OutBlob), Provider: ProviderConfigfsTSM + " (" + tsmProviderTDX + ")"}, nil
}

// tdxHint explains the TDX failures an operator can fix.
func tdxHint(err error) string {
	if h := configfsHint(err, 0); h != "" && !strings.Contains(h, "VMPL") && !strings.Contains(h, "sev-guest") && !strings.Contains(h, "AMD") {
		return h
	}
	return " (the TD's quote request failed: is the host's quoting service (QGS) running and reachable by the TD?)"
}

// tdxReportData is the REPORTDATA of a TDX quote (v4, or v5 with either
// body type), read where Intel's layout puts it. The agent checks only
// this; the quote's signatures are the verifier's business (and the agent
// links no verifier).
func tdxReportData(q []byte) ([]byte, error) {
	const header, reportData = 48, 520
	if len(q) < header {
		return nil, fmt.Errorf("%d bytes, shorter than a quote header", len(q))
	}
	v, tee := binary.LittleEndian.Uint16(q), binary.LittleEndian.Uint32(q[4:])
	if tee != 0x81 {
		return nil, fmt.Errorf("TEE type %#x, not TDX", tee)
	}
	off := header
	switch v {
	case 4:
	case 5:
		off += 6 // body type and size
	default:
		return nil, fmt.Errorf("quote version %d, want 4 or 5", v)
	}
	if len(q) < off+reportData+64 {
		return nil, errors.New("too short for a TD report")
	}
	return q[off+reportData : off+reportData+64], nil
}
