package server

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/kura-project/kura/internal/ledger/acltest"
)

// TestACLWithNpmClient drives kura's Azure Confidential Ledger surface
// with Microsoft's @azure-rest/confidential-ledger client (1.0.0, API
// 2022-05-13): the identity fetched with getLedgerIdentity and then pinned
// as the only trusted CA, users and roles (merge patch), writes with
// x-ms-ccf-transaction-id, reads, the current entry, statuses polled to
// Committed, receipts, paging with nextLink, ranges and collections. The
// receipts verify with ACL's published algorithm (internal/ledger/acltest)
// against the identity certificate alone.
func TestACLWithNpmClient(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the npm interop test starts node")
	}
	dir := npmInstall(t)
	l := startLive(t)
	user := l.principal(t, "acl-user")
	tok, err := user.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"https://confidential-ledger.azure.com/.default"}})
	if err != nil {
		t.Fatal(err)
	}

	idOut := runScript(t, dir, "acl.mjs", l, []string{"KURA_PHASE=identity", "NODE_EXTRA_CA_CERTS=" + filepath.Join(l.dir, "tls", "ca.pem")})
	var ident struct {
		LedgerIdentityCertificate string `json:"ledgerIdentityCertificate"`
		LedgerID                  string `json:"ledgerId"`
	}
	idOut["getLedgerIdentity"].must(t, &ident)
	ca, err := os.ReadFile(filepath.Join(l.dir, "tls", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if ident.LedgerID != "kura-interop" || strings.TrimSpace(ident.LedgerIdentityCertificate) != strings.TrimSpace(string(ca)) {
		t.Fatalf("getLedgerIdentity: %q, certificate is the dev CA: %v", ident.LedgerID, strings.TrimSpace(ident.LedgerIdentityCertificate) == strings.TrimSpace(string(ca)))
	}

	out := runScript(t, dir, "acl.mjs", l, []string{"KURA_PHASE=ledger", "KURA_IDENTITY=" + ident.LedgerIdentityCertificate,
		"KURA_USER_ID=" + user.id, "KURA_USER_TOKEN=" + tok.Token})

	type answer struct {
		Status int             `json:"status"`
		Body   json.RawMessage `json:"body"`
		TxID   string          `json:"txid"`
	}
	body := func(name string, v any) answer {
		t.Helper()
		var a answer
		out[name].must(t, &a)
		if v != nil {
			if err := json.Unmarshal(a.Body, v); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		return a
	}
	out["writeWithoutRole"].refused(t, 403, "NotAllowed")
	var u struct{ AssignedRole, UserID string }
	body("createUser", &u)
	if u.AssignedRole != "Contributor" || u.UserID != user.id {
		t.Errorf("createUser: %+v", u)
	}
	u = struct{ AssignedRole, UserID string }{}
	body("getUser", &u)
	if u.AssignedRole != "Contributor" {
		t.Errorf("getUser: %+v", u)
	}
	var ids []string
	out["writeDefault"].must(t, &ids)
	if len(ids) != 3 || ids[0] == "" {
		t.Fatalf("writeDefault: transaction ids %v", ids)
	}
	var wi struct {
		Count       int
		Body        struct{ CollectionID string }
		First, Last string
	}
	out["writeInterop"].must(t, &wi)
	if wi.Count != 230 || wi.Body.CollectionID != "interop" {
		t.Errorf("writeInterop: %+v", wi)
	}
	out["writeAudit"].refused(t, 400, "kura-audit")
	out["userPatchesUsers"].refused(t, 403, "NotAllowed")

	type entry struct {
		Contents, CollectionID, TransactionID string
	}
	var unexpected bool
	out["isUnexpected"].must(t, &unexpected)
	if unexpected {
		t.Error("the client's isUnexpected calls kura's answer to getLedgerEntry unexpected")
	}
	var got struct {
		State string
		Entry entry
	}
	body("getEntry", &got)
	if got.State != "Ready" || got.Entry != (entry{"default 1", "subledger:0", ids[1]}) {
		t.Errorf("getEntry: %+v", got)
	}
	body("getEntryInterop", &got)
	if got.Entry.Contents != "interop 7" || got.Entry.CollectionID != "interop" {
		t.Errorf("getEntry in interop: %+v", got)
	}
	var cur entry
	body("current", &cur)
	if cur != (entry{"interop 229", "interop", wi.Last}) {
		t.Errorf("current: %+v", cur)
	}
	var st struct {
		Seen []string
		Body struct{ State, TransactionID string }
	}
	out["status"].must(t, &st)
	if st.Body.State != "Committed" || st.Body.TransactionID != wi.Last {
		t.Errorf("status never Committed: %+v", st)
	}

	var receipts map[string]struct {
		Receipt       json.RawMessage
		State         string
		TransactionID string
	}
	out["receipts"].must(t, &receipts)
	if len(receipts) != 5 {
		t.Errorf("%d receipts", len(receipts))
	}
	for id, r := range receipts {
		if r.State != "Ready" || r.TransactionID != id {
			t.Errorf("receipt %s: state %q, id %q", id, r.State, r.TransactionID)
		}
		if err := acltest.Verify(r.Receipt, ident.LedgerIdentityCertificate); err != nil {
			t.Errorf("receipt %s does not verify with ACL's algorithm: %v\n%s", id, err, r.Receipt)
		}
		var rc acltest.Receipt
		json.Unmarshal(r.Receipt, &rc)
		if !strings.HasPrefix(rc.LeafComponents.CommitEvidence, "ce:"+id+":") {
			t.Errorf("receipt %s: commit evidence %q", id, rc.LeafComponents.CommitEvidence)
		}
		// A receipt moved to another transaction does not verify.
		tampered := strings.Replace(string(r.Receipt), rc.LeafComponents.WriteSetDigest, strings.Repeat("0", 64), 1)
		if acltest.Verify([]byte(tampered), ident.LedgerIdentityCertificate) == nil {
			t.Errorf("receipt %s verifies with another writeSetDigest", id)
		}
	}

	var ld struct {
		State string
		All   []entry
	}
	out["listDefault"].must(t, &ld)
	if ld.State != "Ready" || len(ld.All) != 3 || ld.All[2] != (entry{"default 2", "subledger:0", ids[2]}) {
		t.Errorf("listDefault: %+v", ld)
	}
	var li struct {
		Count         int
		First, Last   string
		FirstNextLink string
	}
	out["listInterop"].must(t, &li)
	if li.Count != 230 || li.First != wi.First || li.Last != wi.Last || !strings.Contains(li.FirstNextLink, "fromTransactionId=") {
		t.Errorf("listInterop (paged): %+v", li)
	}
	var rng []string
	out["listRange"].must(t, &rng)
	if fmt.Sprint(rng) != "[interop 10 interop 11 interop 12 interop 13 interop 14]" {
		t.Errorf("listRange: %v", rng)
	}
	var colls []string
	out["collections"].must(t, &colls)
	if fmt.Sprint(colls) != "[interop subledger:0]" {
		t.Errorf("collections seen by a Contributor: %v (kura-audit is for auditors)", colls)
	}
	out["collectionsAdmin"].must(t, &colls)
	if fmt.Sprint(colls) != "[interop kura-audit subledger:0]" {
		t.Errorf("collections seen by the administrator: %v", colls)
	}
	out["readAuditAsUser"].refused(t, 403, "auditor or administrator")
	out["receiptOfAuditAsUser"].refused(t, 403, "auditor or administrator")
	body("readAuditAsAdmin", &got)
	if got.Entry.CollectionID != "kura-audit" || !strings.Contains(got.Entry.Contents, `"action"`) {
		t.Errorf("an audit record read by the administrator: %+v", got)
	}
	u = struct{ AssignedRole, UserID string }{}
	body("makeReader", &u)
	if u.AssignedRole != "Reader" {
		t.Errorf("makeReader: %+v", u)
	}
	out["readerWrites"].refused(t, 403, "Contributor")
	body("readerReads", &got)
	if got.Entry.Contents != "default 0" {
		t.Errorf("a Reader's read: %+v", got)
	}
	if a := body("deleteUser", nil); a.Status != 204 {
		t.Errorf("deleteUser: %d", a.Status)
	}
	out["getUserAfterDelete"].refused(t, 404, "no ledger role")
	out["writeAfterDelete"].refused(t, 403, "NotAllowed")
}
