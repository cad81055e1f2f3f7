// Package evidence obtains raw AMD SEV-SNP attestation evidence from inside
// the confidential VM the kura agent runs in.
//
// Two kernel interfaces can produce an SNP report: Linux configfs-tsm
// (/sys/kernel/config/tsm/report, kernel 6.7 and later) and the older
// /dev/sev-guest ioctl. Both are reached through Google's libraries
// (go-configfs-tsm and go-sev-guest); Detect picks the one the guest has.
//
// Threat model. The report is produced and signed by the AMD secure
// processor, so nothing here needs to be trusted for the report's
// authenticity: the verifier checks the signature. What this package must
// get right is binding. The agent asks for a report over a specific 64-byte
// REPORT_DATA (a hash committing to its key and the verifier's nonce); a
// confused driver, a buggy library or a concurrent writer to the same
// configfs entry could hand back a well-signed report over different data,
// which a verifier would then accept as evidence for something the agent
// never asked for. So every Source checks that the report is exactly 1184
// bytes, that its REPORT_DATA equals the request and that its VMPL is the
// requested one, and refuses the report otherwise.
//
// The certificate table that accompanies a report comes from the host,
// which is untrusted. CertTablePEM parses it strictly and never panics; it
// only converts formats and does not judge the certificates — verification
// (chain to AMD's roots, TCB, revocation) happens on the verifier's side.
//
// Errors name the interface that failed and why, and never include
// REPORT_DATA or other request contents.
package evidence

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"syscall"
	"time"
)

// SNP is raw SEV-SNP evidence: the 1184-byte report and, when the platform
// provides them, the VCEK/VLEK chain as PEM (VCEK/VLEK first, then ASK/ASVK,
// ARK).
type SNP struct {
	// Report is the attestation report exactly as the firmware produced it.
	Report []byte
	// CertChainPEM is the host-provided certificate chain, leaf first, or
	// nil when the host provided none (the verifier then fetches the VCEK
	// from AMD's KDS; a VLEK cannot be fetched).
	CertChainPEM []byte
	// Provider names the kernel interface that produced the evidence
	// (ProviderConfigfsTSM or ProviderSevGuest), for logs and diagnostics.
	Provider string
}

// Evidence is attestation evidence of any TEE as the agent sends it: it
// posts to /attest/{Type} a body whose member Member is Body, next to the
// runtime data and the nonce.
type Evidence struct {
	// Type is the attestation type of the request path (TypeSevSnpVm).
	Type string
	// Member is the request body member that carries Body ("report").
	Member string
	// Body is the encoded evidence, the value of Member: for SevSnpVm the
	// base64url (no padding) of the SNP bundle JSON.
	Body string
	// Provider names what produced the evidence, for logs.
	Provider string
}

// Source gets evidence bound to reportData (for SEV-SNP: a report whose
// REPORT_DATA is exactly reportData). On error it returns no evidence.
type Source interface {
	Evidence(ctx context.Context, reportData [64]byte) (*Evidence, error)
}

// The SevSnpVm attestation type and its evidence member.
const (
	TypeSevSnpVm   = "SevSnpVm"
	MemberSevSnpVm = "report"
)

// SNPBundle is the JSON of the SevSnpVm report member (before base64url):
// the report and the host's certificate chain, both base64.
type SNPBundle struct {
	SnpReport     string `json:"SnpReport"`               // base64url (no padding) of the report
	VcekCertChain string `json:"VcekCertChain,omitempty"` // std base64 of the PEM chain
	Endorsements  string `json:"Endorsements,omitempty"`
}

// Evidence encodes SNP evidence as the SevSnpVm request expects it.
func (s *SNP) Evidence() (*Evidence, error) {
	b64u := base64.RawURLEncoding.EncodeToString
	bundle := SNPBundle{SnpReport: b64u(s.Report)}
	if len(s.CertChainPEM) > 0 {
		bundle.VcekCertChain = base64.StdEncoding.EncodeToString(s.CertChainPEM)
	}
	bb, err := json.Marshal(bundle)
	if err != nil {
		return nil, err
	}
	return &Evidence{Type: TypeSevSnpVm, Member: MemberSevSnpVm, Body: b64u(bb), Provider: s.Provider}, nil
}

// SNPSource is a source of raw SEV-SNP evidence.
type SNPSource interface {
	SNPReport(ctx context.Context, reportData [64]byte) (*SNP, error)
}

// FromSNP returns the Evidence of an SNP source's report.
func FromSNP(ctx context.Context, src SNPSource, reportData [64]byte) (*Evidence, error) {
	s, err := src.SNPReport(ctx, reportData)
	if err != nil {
		return nil, err
	}
	return s.Evidence()
}

// Values of SNP.Provider.
const (
	ProviderConfigfsTSM = "configfs-tsm"
	ProviderSevGuest    = "sev-guest-ioctl"
)

// Layout of the attestation report (AMD SEV-SNP ABI specification, table
// "ATTESTATION_REPORT Structure"); only the fields this package checks.
const (
	// ReportSize is the size of an SNP attestation report (0x4A0).
	ReportSize = 1184

	reportVMPLOffset       = 0x30
	reportSignerInfoOffset = 0x48
	reportDataOffset       = 0x50
	reportDataEnd          = 0x90

	// SIGNING_KEY (SIGNER_INFO bits 4:2) values.
	signingKeyVCEK = 0
	signingKeyVLEK = 1

	// maxVMPL is the highest SNP virtual machine privilege level.
	maxVMPL = 3
)

// Bounded retry for transient refusals (host rate limiting, configfs entry
// busy). The kernel already retries host throttling internally for up to a
// minute, so a transient error that reaches user space is worth only a few
// more attempts; callers bound the total time with their context.
const (
	defaultAttempts   = 5
	defaultBackoff    = 200 * time.Millisecond
	maxBackoffBetween = 2 * time.Second
)

// retryPolicy configures the bounded retry. The zero value means the
// defaults above; tests shorten the backoff.
type retryPolicy struct {
	attempts int
	backoff  time.Duration
}

func (p retryPolicy) withDefaults() retryPolicy {
	if p.attempts <= 0 {
		p.attempts = defaultAttempts
	}
	if p.backoff <= 0 {
		p.backoff = defaultBackoff
	}
	return p
}

// transient reports whether err is a refusal worth retrying: EBUSY (a
// configfs-tsm entry whose write generation would wrap, or a busy driver)
// and EAGAIN (host rate limiting surfaced by older drivers).
func transient(err error) bool {
	return errors.Is(err, syscall.EBUSY) || errors.Is(err, syscall.EAGAIN)
}

// withRetry calls get until it succeeds, fails with a non-transient error,
// the attempts are used up or ctx ends, sleeping with exponential backoff
// between attempts. It returns the last error and the number of attempts.
func withRetry(ctx context.Context, p retryPolicy, get func() error) (int, error) {
	p = p.withDefaults()
	delay := p.backoff
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return attempt - 1, err
		}
		err := get()
		if err == nil || !transient(err) || attempt == p.attempts {
			return attempt, err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return attempt, fmt.Errorf("%w (while backing off after: %v)", ctx.Err(), err)
		case <-t.C:
		}
		delay = min(2*delay, maxBackoffBetween)
	}
}

// checkVMPL refuses privilege levels the hardware does not have before any
// request reaches the kernel.
func checkVMPL(iface string, vmpl int) error {
	if vmpl < 0 || vmpl > maxVMPL {
		return fmt.Errorf("evidence: %s: VMPL %d out of range 0..%d", iface, vmpl, maxVMPL)
	}
	return nil
}

// checkReport refuses a report that is not bound to the request: wrong size,
// other REPORT_DATA or another VMPL. A driver or library that mixes up
// requests must never yield evidence bound to something else.
func checkReport(iface string, report []byte, reportData [64]byte, vmpl int) error {
	if len(report) != ReportSize {
		return fmt.Errorf("evidence: %s returned %d bytes, want a %d-byte SNP report; refusing it", iface, len(report), ReportSize)
	}
	got := report[reportDataOffset:reportDataEnd]
	for i := range got {
		if got[i] != reportData[i] {
			return fmt.Errorf("evidence: %s returned a report whose REPORT_DATA differs from the requested data (first at byte %d); refusing it", iface, i)
		}
	}
	if v := binary.LittleEndian.Uint32(report[reportVMPLOffset:]); v != uint32(vmpl) {
		return fmt.Errorf("evidence: %s returned a report for VMPL %d, requested VMPL %d; refusing it", iface, v, vmpl)
	}
	return nil
}

// reportLeaf says which endorsement key the report names as its signer, so
// the matching certificate leads the chain when the host supplies both.
func reportLeaf(report []byte) leafChoice {
	signerInfo := binary.LittleEndian.Uint32(report[reportSignerInfoOffset:])
	switch (signerInfo >> 2) & 7 {
	case signingKeyVCEK:
		return leafVCEK
	case signingKeyVLEK:
		return leafVLEK
	default:
		// Reserved or "not signed": let the table decide; the verifier
		// will reject a report it cannot check anyway.
		return leafAuto
	}
}

// errnoError keeps a library's message while letting errors.Is see the
// errno the library dropped by formatting it with %v.
type errnoError struct {
	err   error
	errno syscall.Errno
}

func (e *errnoError) Error() string   { return e.err.Error() }
func (e *errnoError) Unwrap() []error { return []error{e.err, e.errno} }

// withErrno attaches errno (when known) to err unless err already carries it.
func withErrno(err error, errno syscall.Errno) error {
	if errno == 0 || errors.Is(err, errno) {
		return err
	}
	return &errnoError{err: err, errno: errno}
}
