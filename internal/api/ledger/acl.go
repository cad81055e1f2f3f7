package ledger

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/kura-project/kura/internal/api/wire"
	"github.com/kura-project/kura/internal/audit"
	"github.com/kura-project/kura/internal/auth"
	"github.com/kura-project/kura/internal/fault"
	"github.com/kura-project/kura/internal/ledger"
	"github.com/kura-project/kura/internal/ledger/receipt"
	"github.com/kura-project/kura/internal/store"
)

// ACL serves the Azure Confidential Ledger data-plane API (ledger.md §1.3)
// over kura's ledger: transactions, receipts, statuses, collections and
// users, and the identity endpoint ACL clients fetch the ledger's
// certificate from.
type ACL struct {
	Log  *ledger.Log
	Auth *auth.Service
	// Identity is the PEM of the ledger's service certificate: the CA the
	// TLS certificate chains to, which ACL clients pin, and the end of
	// every receipt's endorsement chain.
	Identity func() (string, error)
	Logger   *slog.Logger
}

// DefaultCollection takes entries written without a collectionId, as ACL's
// service-chosen default.
const DefaultCollection = "subledger:0"

// pageSize and pageBytes bound a page of GET /app/transactions.
const (
	pageSize  = 100
	pageBytes = 4 << 20
)

var aclVersions = []string{"0.1-preview", "2022-04-20-preview", "2022-05-13", "2023-01-18-preview",
	"2024-01-26-preview", "2024-07-26-preview", "2024-12-09-preview", "2026-02-23"}

// Register adds the routes to mux.
func (h *ACL) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /ledgerIdentity/{ledgerId}", h.identity)
	mux.HandleFunc("POST /app/transactions", h.with(auth.LedgerWrite, h.append))
	mux.HandleFunc("GET /app/transactions", h.with(auth.LedgerRead, h.list))
	mux.HandleFunc("GET /app/transactions/current", h.with(auth.LedgerRead, h.current))
	mux.HandleFunc("GET /app/transactions/{id}", h.with(auth.LedgerRead, h.get))
	mux.HandleFunc("GET /app/transactions/{id}/receipt", h.with(auth.LedgerRead, h.receipt))
	mux.HandleFunc("GET /app/transactions/{id}/status", h.with(auth.LedgerRead, h.status))
	mux.HandleFunc("GET /app/collections", h.with(auth.LedgerRead, h.collections))
	mux.HandleFunc("GET /app/users/{id}", h.with(auth.LedgerUsers, h.getUser))
	mux.HandleFunc("PATCH /app/users/{id}", h.with(auth.LedgerUsers, h.patchUser))
	mux.HandleFunc("DELETE /app/users/{id}", h.with(auth.LedgerUsers, h.deleteUser))
}

// with checks api-version, then that the caller holds perm.
func (h *ACL) with(perm auth.Permission, f func(http.ResponseWriter, *http.Request, *auth.Principal)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := wire.APIVersion(r, aclVersions); err != nil {
			h.fail(w, err)
			return
		}
		tok, ok := wire.Bearer(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="kura"`)
			wire.Error(w, http.StatusUnauthorized, "Unauthorized", "a bearer token is required")
			return
		}
		p, err := h.Auth.Authenticate(r.Context(), tok)
		if err != nil {
			if errors.Is(err, auth.ErrUnauthenticated) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="kura"`)
				wire.Error(w, http.StatusUnauthorized, "Unauthorized", err.Error())
				return
			}
			h.fail(w, err)
			return
		}
		wire.NotePrincipal(r.Context(), p.Name)
		if !p.Can(perm, "") {
			wire.Error(w, http.StatusForbidden, "NotAllowed", fmt.Sprintf("principal %q is not allowed to call %s %s: it needs the %s ledger role", p.Name, r.Method, r.URL.Path, roleFor(perm)))
			return
		}
		f(w, r, p)
	}
}

func roleFor(perm auth.Permission) string {
	switch perm {
	case auth.LedgerRead:
		return "Reader (or Contributor, Administrator)"
	case auth.LedgerWrite:
		return "Contributor (or Administrator)"
	}
	return "Administrator"
}

// Entry is ACL's LedgerEntry.
type aclEntry struct {
	Contents      string `json:"contents"`
	CollectionID  string `json:"collectionId"`
	TransactionID string `json:"transactionId"`
}

func toACL(r ledger.Record) aclEntry {
	return aclEntry{Contents: string(r.Contents), CollectionID: r.Leaf.Collection, TransactionID: ledger.TxID(int64(r.Leaf.Seq))}
}

// system reports whether a collection is kura's own (kura-audit): never
// written through this API, and read only by auditors and administrators.
func system(c string) bool { return strings.HasPrefix(c, "kura-") }

// readable refuses a non-auditor a kura-* collection.
func readable(p *auth.Principal, c string) error {
	if system(c) && !p.Can(auth.AuditRead, "") {
		return fault.Deny(fmt.Sprintf("collection %q holds kura's audit records: principal %q needs the auditor or administrator role to read it", c, p.Name))
	}
	return nil
}

// readCollection is the collection a read names, if p may read it.
func (h *ACL) readCollection(w http.ResponseWriter, r *http.Request, p *auth.Principal) (string, bool) {
	c, err := collection(r, false)
	if err == nil {
		err = readable(p, c)
	}
	if err != nil {
		h.fail(w, err)
		return "", false
	}
	return c, true
}

// collection is the request's collectionId (the default when absent). The
// audit collection is kura's: read, never written, through this API.
func collection(r *http.Request, writing bool) (string, error) {
	c := r.URL.Query().Get("collectionId")
	if c == "" {
		return DefaultCollection, nil
	}
	if len(c) > receipt.MaxCollection || !utf8.ValidString(c) {
		return "", fault.Bad("collectionId", "at most %d bytes of UTF-8", receipt.MaxCollection)
	}
	if writing && system(c) {
		return "", fault.Bad("collectionId", "collections named kura-* are kura's own (%s holds the audit records); choose another name", audit.LedgerCollection)
	}
	return c, nil
}

func (h *ACL) append(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	coll, err := collection(r, true)
	if err != nil {
		h.fail(w, err)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		h.fail(w, fault.Bad("Content-Type", "the body is JSON (application/json), not %q", ct))
		return
	}
	body, ok := h.body(w, r)
	if !ok {
		return
	}
	var in struct {
		Contents *string `json:"contents"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		h.fail(w, fault.Bad("body", "not a JSON LedgerEntry: %v", err))
		return
	}
	if in.Contents == nil {
		h.fail(w, fault.Bad("contents", "required: the entry's contents, a string"))
		return
	}
	rec, err := h.Log.Append(r.Context(), coll, []byte(*in.Contents))
	if err != nil {
		h.fail(w, err)
		return
	}
	w.Header().Set("x-ms-ccf-transaction-id", ledger.TxID(int64(rec.Leaf.Seq)))
	wire.JSON(w, http.StatusOK, map[string]string{"collectionId": coll})
}

// body reads the request body: 413 past the server's limit.
func (h *ACL) body(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	b, err := io.ReadAll(r.Body)
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		wire.Error(w, http.StatusRequestEntityTooLarge, "RequestTooLarge", fmt.Sprintf("the body is larger than %d bytes", tooBig.Limit))
		return nil, false
	}
	if err != nil {
		h.fail(w, fault.Bad("body", "reading the body: %v", err))
		return nil, false
	}
	return b, true
}

// entry is the transaction of the {id} path value, if p may read it.
func (h *ACL) entry(w http.ResponseWriter, r *http.Request, p *auth.Principal) (ledger.Record, bool) {
	seq, err := ledger.ParseTxID(r.PathValue("id"))
	if err != nil {
		h.fail(w, err)
		return ledger.Record{}, false
	}
	rec, err := h.Log.Get(r.Context(), seq)
	if err != nil {
		h.fail(w, h.notFound(err, r.PathValue("id")))
		return ledger.Record{}, false
	}
	if err := readable(p, rec.Leaf.Collection); err != nil {
		h.fail(w, err)
		return ledger.Record{}, false
	}
	return rec, true
}

func (h *ACL) get(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	rec, ok := h.entry(w, r, p)
	if !ok {
		return
	}
	if c := r.URL.Query().Get("collectionId"); c != "" && c != rec.Leaf.Collection {
		h.fail(w, fault.Missing("transaction %s is not in collection %q", r.PathValue("id"), c))
		return
	}
	wire.JSON(w, http.StatusOK, map[string]any{"state": "Ready", "entry": toACL(rec)})
}

func (h *ACL) current(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	coll, ok := h.readCollection(w, r, p)
	if !ok {
		return
	}
	rec, err := h.Log.Last(r.Context(), coll)
	if errors.Is(err, store.ErrNotFound) {
		h.fail(w, fault.Missing("collection %q holds no entries", coll))
		return
	}
	if err != nil {
		h.fail(w, err)
		return
	}
	wire.JSON(w, http.StatusOK, toACL(rec))
}

func (h *ACL) list(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	coll, ok := h.readCollection(w, r, p)
	if !ok {
		return
	}
	q := r.URL.Query()
	from, to := int64(0), int64(1<<62)
	var err error
	if s := q.Get("fromTransactionId"); s != "" {
		if from, err = ledger.ParseTxID(s); err != nil {
			h.fail(w, fault.Bad("fromTransactionId", "%q is not a transaction id of this ledger (%s)", s, ledger.TxID(0)))
			return
		}
	}
	if s := q.Get("toTransactionId"); s != "" {
		if to, err = ledger.ParseTxID(s); err != nil {
			h.fail(w, fault.Bad("toTransactionId", "%q is not a transaction id of this ledger (%s)", s, ledger.TxID(0)))
			return
		}
	}
	recs, err := h.Log.List(r.Context(), coll, from, to, pageSize+1)
	if err != nil {
		h.fail(w, err)
		return
	}
	out := map[string]any{"state": "Ready"}
	entries := make([]aclEntry, 0, len(recs))
	size := 0
	for i, rec := range recs {
		// A page ends at pageSize entries or pageBytes of contents, with
		// at least one entry, so large entries cannot make a huge answer.
		if i == pageSize || (i > 0 && size+len(rec.Contents) > pageBytes) {
			next := url.Values{}
			next.Set("api-version", q.Get("api-version"))
			if q.Get("collectionId") != "" {
				next.Set("collectionId", coll)
			}
			next.Set("fromTransactionId", ledger.TxID(int64(rec.Leaf.Seq)))
			if q.Get("toTransactionId") != "" {
				next.Set("toTransactionId", q.Get("toTransactionId"))
			}
			out["nextLink"] = "/app/transactions?" + next.Encode()
			break
		}
		size += len(rec.Contents)
		entries = append(entries, toACL(rec))
	}
	out["entries"] = entries
	wire.JSON(w, http.StatusOK, out)
}

func (h *ACL) status(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	rec, ok := h.entry(w, r, p)
	if !ok {
		return
	}
	seq := int64(rec.Leaf.Seq)
	ok, err := h.Log.Committed(r.Context(), seq)
	if err != nil {
		h.fail(w, err)
		return
	}
	state := "Pending"
	if ok {
		state = "Committed"
	}
	wire.JSON(w, http.StatusOK, map[string]string{"state": state, "transactionId": r.PathValue("id")})
}

// aclReceiptJSON is ACL's ReceiptContents.
type aclReceiptJSON struct {
	Cert                string              `json:"cert"`
	LeafComponents      map[string]string   `json:"leafComponents"`
	NodeID              string              `json:"nodeId"`
	Proof               []map[string]string `json:"proof"`
	ServiceEndorsements []string            `json:"serviceEndorsements"`
	Signature           string              `json:"signature"`
}

func (h *ACL) receipt(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	rec, ok := h.entry(w, r, p)
	if !ok {
		return
	}
	seq := int64(rec.Leaf.Seq)
	_, rc, err := h.Log.ACLReceipt(r.Context(), seq)
	if err != nil {
		h.fail(w, err)
		return
	}
	out := aclReceiptJSON{Cert: rc.Cert, NodeID: rc.NodeID, Signature: rc.Signature, ServiceEndorsements: rc.ServiceEndorsements,
		LeafComponents: map[string]string{"claimsDigest": rc.ClaimsDigest, "commitEvidence": rc.CommitEvidence, "writeSetDigest": rc.WriteSetDigest}}
	if out.ServiceEndorsements == nil {
		out.ServiceEndorsements = []string{}
	}
	for _, s := range rc.Proof {
		if s.Left != "" {
			out.Proof = append(out.Proof, map[string]string{"left": s.Left})
		} else {
			out.Proof = append(out.Proof, map[string]string{"right": s.Right})
		}
	}
	if out.Proof == nil {
		out.Proof = []map[string]string{}
	}
	wire.JSON(w, http.StatusOK, map[string]any{"receipt": out, "state": "Ready", "transactionId": r.PathValue("id")})
}

func (h *ACL) collections(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	cs, err := h.Log.Collections(r.Context())
	if err != nil {
		h.fail(w, err)
		return
	}
	out := make([]map[string]string, 0, len(cs))
	for _, c := range cs {
		if readable(p, c) == nil {
			out = append(out, map[string]string{"collectionId": c})
		}
	}
	wire.JSON(w, http.StatusOK, map[string]any{"collections": out})
}

// ledgerRole is the principal's ledger role in ACL's name ("" for none).
func ledgerRole(roles []store.RoleAssignment) string {
	best := ""
	rank := map[string]int{"Reader": 1, "Contributor": 2, "Administrator": 3}
	for _, ra := range roles {
		for acl, kura := range auth.LedgerRoles {
			if ra.Role == kura && ra.Scope == "/" && rank[acl] > rank[best] {
				best = acl
			}
		}
	}
	return best
}

func (h *ACL) getUser(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	id := r.PathValue("id")
	_, roles, err := h.Auth.Principal(r.Context(), id)
	if err != nil {
		h.fail(w, err)
		return
	}
	role := ledgerRole(roles)
	if role == "" {
		h.fail(w, fault.Missing("principal %q holds no ledger role", id))
		return
	}
	wire.JSON(w, http.StatusOK, map[string]string{"assignedRole": role, "userId": id})
}

func (h *ACL) patchUser(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	id := r.PathValue("id")
	body, ok := h.body(w, r)
	if !ok {
		return
	}
	// A JSON merge patch (RFC 7396) of LedgerUser: assignedRole is its one
	// writable member; null removes the role.
	var patch map[string]json.RawMessage
	if err := json.Unmarshal(body, &patch); err != nil || patch == nil {
		h.fail(w, fault.Bad("body", "not a JSON merge patch of a LedgerUser (an object)"))
		return
	}
	_, roles, err := h.Auth.Principal(r.Context(), id)
	if err != nil {
		h.fail(w, err)
		return
	}
	role := ledgerRole(roles)
	if raw, ok := patch["assignedRole"]; ok {
		if string(raw) == "null" {
			role = ""
		} else {
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				h.fail(w, fault.Bad("assignedRole", "a string: Administrator, Contributor or Reader"))
				return
			}
			if _, ok := auth.LedgerRoles[s]; !ok {
				h.fail(w, fault.Bad("assignedRole", "%q is not a ledger role (Administrator, Contributor, Reader)", s))
				return
			}
			role = s
		}
	}
	if err := h.Auth.SetLedgerRole(r.Context(), id, auth.LedgerRoles[role]); err != nil {
		h.fail(w, err)
		return
	}
	out := map[string]string{"userId": id}
	if role != "" {
		out["assignedRole"] = role
	}
	wire.JSON(w, http.StatusOK, out)
}

func (h *ACL) deleteUser(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	if err := h.Auth.SetLedgerRole(r.Context(), r.PathValue("id"), ""); err != nil {
		h.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// identity answers ACL's identity service: the certificate ACL clients pin
// as the ledger's TLS CA. kura serves one ledger, under any ledger id.
func (h *ACL) identity(w http.ResponseWriter, r *http.Request) {
	cert, err := h.Identity()
	if err != nil {
		h.fail(w, err)
		return
	}
	wire.JSON(w, http.StatusOK, map[string]string{"ledgerId": r.PathValue("ledgerId"), "ledgerTlsCertificate": cert})
}

func (h *ACL) notFound(err error, id string) error {
	if errors.Is(err, store.ErrNotFound) {
		return fault.Missing("the ledger has no transaction %s", id)
	}
	return err
}

func (h *ACL) fail(w http.ResponseWriter, err error) {
	if e, ok := fault.As(err); ok && e.Kind != fault.Unavailable {
		code := e.Code
		if code == "" {
			code = map[fault.Kind]string{fault.BadInput: "InvalidInput", fault.NotFound: "NotFound", fault.Conflict: "Conflict", fault.Denied: "NotAllowed"}[e.Kind]
		}
		wire.Error(w, wire.Status(e.Kind), code, e.Public())
		return
	}
	if h.Logger != nil {
		h.Logger.Error("confidential ledger", "err", err)
	}
	if errors.Is(err, ledger.ErrFork) {
		wire.Error(w, http.StatusServiceUnavailable, "LedgerInconsistent", "the stored ledger does not extend its last signed checkpoint; nothing is signed (see the server log)")
		return
	}
	wire.Error(w, http.StatusServiceUnavailable, "ServiceUnavailable", "the ledger is unavailable; retry")
}
