package snp

import (
	"fmt"

	"github.com/kura-project/kura/internal/attest"
)

// Claims returns the service-generated claims of a verified report, named as
// MAA names them in SevSnpVm tokens (x-ms-sevsnpvm-*), followed by kura's own
// (x-kura-sevsnpvm-*) for facts MAA does not expose but policies need: the
// product line, the key kind, the firmware version, Turin's FMC SVN.
func (res *Result) Claims() attest.Claims {
	r := res.Report
	tcb := DecodeTCB(r.ReportedTCB, res.ProductLine)
	c := attest.Claims{
		{Type: "x-ms-sevsnpvm-authorkeydigest", Value: hexs(r.AuthorKeyDigest)},
		{Type: "x-ms-sevsnpvm-bootloader-svn", Value: int64(tcb.BL)},
		{Type: "x-ms-sevsnpvm-familyId", Value: hexs(r.FamilyID)},
		{Type: "x-ms-sevsnpvm-guestsvn", Value: int64(r.GuestSVN)},
		{Type: "x-ms-sevsnpvm-hostdata", Value: hexs(r.HostData)},
		{Type: "x-ms-sevsnpvm-idkeydigest", Value: hexs(r.IDKeyDigest)},
		{Type: "x-ms-sevsnpvm-imageId", Value: hexs(r.ImageID)},
		{Type: "x-ms-sevsnpvm-is-debuggable", Value: r.Policy&PolicyDebug != 0},
		{Type: "x-ms-sevsnpvm-launchmeasurement", Value: hexs(r.Measurement)},
		{Type: "x-ms-sevsnpvm-microcode-svn", Value: int64(tcb.UCODE)},
		{Type: "x-ms-sevsnpvm-migration-allowed", Value: r.Policy&PolicyMigrateMA != 0},
		{Type: "x-ms-sevsnpvm-reportdata", Value: hexs(r.ReportData)},
		{Type: "x-ms-sevsnpvm-reportid", Value: hexs(r.ReportID)},
		{Type: "x-ms-sevsnpvm-smt-allowed", Value: r.Policy&PolicySMT != 0},
		{Type: "x-ms-sevsnpvm-snpfw-svn", Value: int64(tcb.SNP)},
		{Type: "x-ms-sevsnpvm-tee-svn", Value: int64(tcb.TEE)},
		{Type: "x-ms-sevsnpvm-vmpl", Value: int64(r.VMPL)},
		{Type: "x-kura-sevsnpvm-product-line", Value: res.ProductLine},
		{Type: "x-kura-sevsnpvm-signing-key", Value: r.SigningKey.String()},
		{Type: "x-kura-sevsnpvm-report-version", Value: int64(r.Version)},
		{Type: "x-kura-sevsnpvm-reported-tcb", Value: tcb.String()},
		{Type: "x-kura-sevsnpvm-firmware-version", Value: fwVersion(r)},
		{Type: "x-kura-sevsnpvm-policy", Value: hexU64(r.Policy)},
		{Type: "x-kura-sevsnpvm-chipid", Value: hexs(r.ChipID)},
	}
	if tcb.Turin {
		c = append(c, attest.Claim{Type: "x-kura-sevsnpvm-fmc-svn", Value: int64(tcb.FMC)})
	}
	if res.Extensions != nil && res.Extensions.CSPID != "" {
		c = append(c, attest.Claim{Type: "x-kura-sevsnpvm-vlek-csp-id", Value: res.Extensions.CSPID})
	}
	if res.Simulated {
		c = append(c, attest.Claim{Type: "x-kura-simulated", Value: true})
	}
	return c
}

func fwVersion(r *Report) string {
	return fmt.Sprintf("%d.%d.%d", r.CurrentMajor, r.CurrentMinor, r.CurrentBuild)
}

func hexU64(v uint64) string { return fmt.Sprintf("0x%x", v) }
