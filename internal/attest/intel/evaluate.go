package intel

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// TCB statuses as Intel's TCB info writes them.
const (
	UpToDate                          = "UpToDate"
	SWHardeningNeeded                 = "SWHardeningNeeded"
	ConfigurationNeeded               = "ConfigurationNeeded"
	ConfigurationAndSWHardeningNeeded = "ConfigurationAndSWHardeningNeeded"
	OutOfDate                         = "OutOfDate"
	OutOfDateConfigurationNeeded      = "OutOfDateConfigurationNeeded"
	Revoked                           = "Revoked"
	// Statuses of Intel's TD relaunch check (TD report 1.5): the TD runs
	// on an out-of-date TDX module, but the module now loaded (a TD
	// preserving update) is current; relaunching the TD would bring it
	// up to date.
	TDRelaunchAdvised                    = "TDRelaunchAdvised"
	TDRelaunchAdvisedConfigurationNeeded = "TDRelaunchAdvisedConfigurationNeeded"
)

// TCB is the appraisal of a platform against verified collateral. Status
// is empty when no TCB level matches (Intel: TCB not supported); the
// statuses are claims, and the policy decides what to accept.
type TCB struct {
	Status                  string // converged: platform, TDX module and QE
	Date                    time.Time
	AdvisoryIDs             []string
	LevelStatus             string // the matched TCB level's own status
	QEStatus                string // "" when no QE identity level matches
	Module                  string // TDX module identity, e.g. TDX_01 ("" for version 0)
	ModuleStatus            string
	TCBEvaluationDataNumber int
}

// TDXInput is what a TDX quote gives the TCB evaluation.
type TDXInput struct {
	PCK            *PCK
	QEReport       [ReportSize]byte
	TEETCBSVN      [16]byte
	MRSignerSeam   [48]byte
	SeamAttributes [8]byte
	// TEETCBSVN2 is the TD report 1.5's TEE_TCB_SVN2 (the module now
	// loaded, after a TD preserving update); nil for TD report 1.0.
	TEETCBSVN2 *[16]byte
}

// EvaluateTDX matches a TDX platform against verified collateral (TDX TCB
// info, TD_QE identity), as Intel's Quote Verification Library does
// (TcbLevelCheck, TdxModuleCheck): the first TCB level whose SGX
// components and PCESVN the PCK meets and whose TDX components the TD's
// TEE_TCB_SVN meets (from index 2 when a TDX module version is set),
// the TDX module's identity and level, and the QE's identity and level.
// An error is a mismatch of identity (FMSPC, PCE-ID, QE or module signer),
// never a TCB status.
func (v *Verified) EvaluateTDX(in TDXInput) (TCB, error) {
	ti, qe := v.TCBInfo, v.QEIdentity
	out := TCB{TCBEvaluationDataNumber: ti.TCBEvaluationDataNumber}
	if ti.ID != "TDX" {
		return out, fmt.Errorf("TCB info %q is not TDX's", ti.ID)
	}
	if !hexEq(ti.FMSPC, hex.EncodeToString(in.PCK.FMSPC[:])) || !hexEq(ti.PCEID, hex.EncodeToString(in.PCK.PCEID[:])) {
		return out, fmt.Errorf("the TCB info is for FMSPC %s / PCE-ID %s, the PCK for %x / %x", ti.FMSPC, ti.PCEID, in.PCK.FMSPC, in.PCK.PCEID)
	}
	var err error
	if out.QEStatus, err = qeStatus(qe, "TD_QE", in.QEReport); err != nil {
		return out, err
	}
	var sgx, tdx *TCBLevel
	for i := range ti.TCBLevels {
		l := &ti.TCBLevels[i]
		if len(l.TCB.SGX) != 16 || len(l.TCB.TDX) != 16 {
			return out, fmt.Errorf("TCB info: level %d has %d SGX and %d TDX components, want 16 each", i, len(l.TCB.SGX), len(l.TCB.TDX))
		}
		if !meets(in.PCK.Components[:], l.TCB.SGX, 0) || int(in.PCK.PCESVN) < l.TCB.PCESVN {
			continue
		}
		if sgx == nil {
			sgx = l
		}
		from := 0
		if in.TEETCBSVN[1] > 0 {
			from = 2 // the module's version and SVN are judged by its identity
		}
		if meets(in.TEETCBSVN[:], l.TCB.TDX, from) {
			tdx = l
			break
		}
	}
	if sgx == nil || tdx == nil {
		return out, nil // no level matches: TCB not supported
	}
	out.LevelStatus, out.Date, out.AdvisoryIDs = tdx.TCBStatus, tdx.TCBDate, tdx.AdvisoryIDs
	if out.AdvisoryIDs == nil {
		out.AdvisoryIDs = []string{}
	}
	if out.Module, out.ModuleStatus, err = moduleStatus(ti, in); err != nil {
		return out, err
	}
	if out.ModuleStatus == "" {
		return out, nil // no module level matches: not supported
	}
	st := converge(tdx.TCBStatus, out.ModuleStatus)
	if in.TEETCBSVN2 != nil {
		st = relaunch(ti, *in.TEETCBSVN2, sgx.TCBStatus, st, out.ModuleStatus, out.QEStatus)
	}
	if st != Revoked && out.QEStatus != "" {
		st = converge(st, out.QEStatus)
	}
	if out.QEStatus == "" {
		st = "" // no QE level: not supported
	}
	out.Status = st
	return out, nil
}

// relaunch is Intel's TD relaunch check (Quote Verification Library,
// TDRelaunchCheck): a TD whose SGX level is current enough, whose TDX
// status is out of date because of its TDX module, and whose
// TEE_TCB_SVN2 (the module now loaded) meets the newest TCB level and
// module level, is advised to relaunch; otherwise tdxStatus stands.
func relaunch(ti *TCBInfo, svn2 [16]byte, sgxStatus, tdxStatus, moduleStatus, qeStatus string) string {
	if qeStatus == OutOfDate || qeStatus == Revoked || qeStatus == "" {
		return tdxStatus
	}
	switch sgxStatus {
	case UpToDate, SWHardeningNeeded, ConfigurationNeeded, ConfigurationAndSWHardeningNeeded:
	default:
		return tdxStatus
	}
	if tdxStatus != OutOfDate && tdxStatus != OutOfDateConfigurationNeeded || moduleStatus != OutOfDate || len(ti.TCBLevels) == 0 {
		return tdxStatus
	}
	latest := ti.TCBLevels[0].TCB.TDX
	minSVN := latest[0].SVN // module version 0: the TCB level's component 0
	if svn2[1] != 0 {
		id := fmt.Sprintf("TDX_%02X", svn2[1])
		minSVN = -1
		for _, m := range ti.TDXModuleIdentities {
			if strings.EqualFold(m.ID, id) && len(m.TCBLevels) > 0 {
				minSVN = m.TCBLevels[0].TCB.ISVSVN
			}
		}
		if minSVN < 0 {
			return tdxStatus // no such module identity: no advice
		}
	}
	if int(svn2[0]) < minSVN || int(svn2[2]) < latest[2].SVN {
		return tdxStatus
	}
	if configurationNeeded(sgxStatus) || configurationNeeded(tdxStatus) {
		return TDRelaunchAdvisedConfigurationNeeded
	}
	return TDRelaunchAdvised
}

func configurationNeeded(s string) bool {
	switch s {
	case ConfigurationNeeded, OutOfDateConfigurationNeeded, ConfigurationAndSWHardeningNeeded, TDRelaunchAdvisedConfigurationNeeded:
		return true
	}
	return false
}

// meets reports whether every component from index from is at least the
// level's.
func meets(have []byte, level []svn, from int) bool {
	for i := from; i < 16; i++ {
		if int(have[i]) < level[i].SVN {
			return false
		}
	}
	return true
}

// converge folds a component's status (a TDX module's or the QE's) into
// the TCB level's, as Intel's library does.
func converge(level, other string) string {
	switch other {
	case OutOfDate:
		switch level {
		case UpToDate, SWHardeningNeeded:
			return OutOfDate
		case ConfigurationNeeded, ConfigurationAndSWHardeningNeeded:
			return OutOfDateConfigurationNeeded
		}
	case Revoked:
		return Revoked
	}
	return level
}

// moduleStatus is the TDX module's identity and TCB status: for module
// version 0 the TCB info's tdxModule (its signer and attributes), else the
// identity TDX_<version> and its first level the module's SVN meets.
func moduleStatus(ti *TCBInfo, in TDXInput) (string, string, error) {
	ver, isvsvn := in.TEETCBSVN[1], in.TEETCBSVN[0]
	signer := hex.EncodeToString(in.MRSignerSeam[:])
	if ver == 0 {
		m := ti.TDXModule
		if m == nil {
			return "", "", errors.New("the TCB info has no tdxModule to judge the TD's module (version 0) by")
		}
		{
			if !hexEq(m.MRSigner, signer) || !attrsMatch(in.SeamAttributes[:], m.Attributes, m.AttributesMask) {
				return "", "", fmt.Errorf("the TDX module (signer %s) is not the TCB info's", signer)
			}
		}
		return "", UpToDate, nil
	}
	id := fmt.Sprintf("TDX_%02X", ver)
	for _, m := range ti.TDXModuleIdentities {
		if !strings.EqualFold(m.ID, id) {
			continue
		}
		if !hexEq(m.MRSigner, signer) || !attrsMatch(in.SeamAttributes[:], m.Attributes, m.AttributesMask) {
			return id, "", fmt.Errorf("the TDX module (signer %s) is not identity %s's", signer, id)
		}
		for _, l := range m.TCBLevels {
			if int(isvsvn) >= l.TCB.ISVSVN {
				return id, l.TCBStatus, nil
			}
		}
		return id, "", nil
	}
	return id, "", fmt.Errorf("the TCB info has no TDX module identity %s (the TD's module version %d)", id, ver)
}

// attrsMatch compares value & mask with want & mask (hex).
func attrsMatch(value []byte, want, mask string) bool {
	w, err1 := hex.DecodeString(want)
	m, err2 := hex.DecodeString(mask)
	if err1 != nil || err2 != nil || len(w) != len(value) || len(m) != len(value) {
		return false
	}
	for i := range value {
		if value[i]&m[i] != w[i]&m[i] {
			return false
		}
	}
	return true
}

// qeStatus checks the QE's report against its identity (id "QE" or
// "TD_QE": signer, product, MISCSELECT and ATTRIBUTES under their masks)
// and returns its TCB status ("" when no level matches).
func qeStatus(qe *QEIdentity, id string, r [ReportSize]byte) (string, error) {
	if qe.ID != id {
		return "", fmt.Errorf("the QE identity is %q's, want %q", qe.ID, id)
	}
	if !hexEq(qe.MRSigner, hex.EncodeToString(r[128:160])) {
		return "", fmt.Errorf("the QE's signer %x is not the QE identity's %s", r[128:160], qe.MRSigner)
	}
	if prod := binary.LittleEndian.Uint16(r[256:]); int(prod) != qe.ISVProdID {
		return "", fmt.Errorf("the QE's product id %d is not the QE identity's %d", prod, qe.ISVProdID)
	}
	// MISCSELECT is a little-endian u32 in the report, a big-endian hex
	// number in the identity.
	misc := binary.LittleEndian.Uint32(r[16:])
	miscBE := binary.BigEndian.AppendUint32(nil, misc)
	if !attrsMatch(miscBE, qe.MiscSelect, qe.MiscSelectMask) || !attrsMatch(r[48:64], qe.Attributes, qe.AttributesMask) {
		return "", fmt.Errorf("the QE's MISCSELECT or ATTRIBUTES are not the QE identity's")
	}
	svn := int(binary.LittleEndian.Uint16(r[258:]))
	for _, l := range qe.TCBLevels {
		if svn >= l.TCB.ISVSVN {
			return l.TCBStatus, nil
		}
	}
	return "", nil
}

// EvaluateSGX matches an SGX platform against verified collateral (SGX
// TCB info, QE identity): the first TCB level whose components and PCESVN
// the PCK meets, converged with the QE's status, as Intel's library does.
func (v *Verified) EvaluateSGX(pck *PCK, qeReport [ReportSize]byte) (TCB, error) {
	ti := v.TCBInfo
	out := TCB{TCBEvaluationDataNumber: ti.TCBEvaluationDataNumber}
	if ti.ID != "SGX" {
		return out, fmt.Errorf("TCB info %q is not SGX's", ti.ID)
	}
	if !hexEq(ti.FMSPC, hex.EncodeToString(pck.FMSPC[:])) || !hexEq(ti.PCEID, hex.EncodeToString(pck.PCEID[:])) {
		return out, fmt.Errorf("the TCB info is for FMSPC %s / PCE-ID %s, the PCK for %x / %x", ti.FMSPC, ti.PCEID, pck.FMSPC, pck.PCEID)
	}
	var err error
	if out.QEStatus, err = qeStatus(v.QEIdentity, "QE", qeReport); err != nil {
		return out, err
	}
	for i := range ti.TCBLevels {
		l := &ti.TCBLevels[i]
		if len(l.TCB.SGX) != 16 {
			return out, fmt.Errorf("TCB info: level %d has %d SGX components, want 16", i, len(l.TCB.SGX))
		}
		if !meets(pck.Components[:], l.TCB.SGX, 0) || int(pck.PCESVN) < l.TCB.PCESVN {
			continue
		}
		out.LevelStatus, out.Date, out.AdvisoryIDs = l.TCBStatus, l.TCBDate, l.AdvisoryIDs
		if out.AdvisoryIDs == nil {
			out.AdvisoryIDs = []string{}
		}
		if out.QEStatus != "" {
			out.Status = converge(l.TCBStatus, out.QEStatus)
		}
		return out, nil
	}
	return out, nil // no level matches: TCB not supported
}
