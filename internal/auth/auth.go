// Package auth is who may do what in kura: principals, their roles over
// scopes, bearer tokens kura issues through the OAuth2 client-credentials
// grant, and tokens from external OpenID Connect issuers.
//
// Roles follow Managed HSM's local RBAC: administrator (everything),
// crypto officer (manage keys), crypto user (use keys), release user
// (secure key release only) and auditor (read only). A role is granted over
// "/" (all keys) or "/keys/<name>" (one key).
//
// Secrets: client secrets and access tokens are 256-bit random values, kept
// only as SHA-256 hashes and compared in constant time. Nothing here logs or
// returns a secret after issuing it.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kura-project/kura/internal/audit"
	"github.com/kura-project/kura/internal/fault"
	"github.com/kura-project/kura/internal/oidc"
	"github.com/kura-project/kura/internal/store"
)

// Role names.
const (
	Administrator = "administrator"
	CryptoOfficer = "crypto-officer"
	CryptoUser    = "crypto-user"
	ReleaseUser   = "release-user"
	Auditor       = "auditor"

	// The confidential ledger's roles, Azure Confidential Ledger's
	// Administrator, Contributor and Reader (granted over "/").
	LedgerAdministrator = "ledger-administrator"
	LedgerContributor   = "ledger-contributor"
	LedgerReader        = "ledger-reader"
)

// Roles lists the roles.
var Roles = []string{Administrator, CryptoOfficer, CryptoUser, ReleaseUser, Auditor, LedgerAdministrator, LedgerContributor, LedgerReader}

// LedgerRoles maps ACL's role names to kura's.
var LedgerRoles = map[string]string{"Administrator": LedgerAdministrator, "Contributor": LedgerContributor, "Reader": LedgerReader}

// Permission is an action class a role may hold.
type Permission int

const (
	KeysRead    Permission = iota + 1 // get and list keys, deleted keys, rotation policies
	KeysManage                        // create, import, update, delete, recover, purge, backup, restore, rotate, set rotation policy
	KeysCrypto                        // encrypt, decrypt, sign, verify, wrap, unwrap, random bytes
	KeysRelease                       // secure key release
	Admin                             // principals and roles, policies, token keys
	LedgerRead                        // read ledger entries, receipts, statuses, collections
	LedgerWrite                       // append ledger entries
	LedgerUsers                       // grant and revoke ledger roles
	AuditRead                         // read kura's own audit records (the ledger's kura-* collections)
)

var grants = map[string][]Permission{
	Administrator: {KeysRead, KeysManage, KeysCrypto, KeysRelease, Admin, LedgerRead, LedgerWrite, LedgerUsers, AuditRead},
	CryptoOfficer: {KeysRead, KeysManage},
	CryptoUser:    {KeysRead, KeysCrypto},
	ReleaseUser:   {KeysRelease},
	Auditor:       {KeysRead, LedgerRead, AuditRead},

	LedgerAdministrator: {LedgerRead, LedgerWrite, LedgerUsers},
	LedgerContributor:   {LedgerRead, LedgerWrite},
	LedgerReader:        {LedgerRead},
}

// Principal is an authenticated caller.
type Principal struct {
	ID, Name string
	Roles    []store.RoleAssignment
}

// Can reports whether p holds perm over the key named key ("" for an action
// on no particular key, which needs a grant over "/").
func (p *Principal) Can(perm Permission, key string) bool {
	for _, r := range p.Roles {
		if r.Scope != "/" && (key == "" || r.Scope != "/keys/"+key) {
			continue
		}
		for _, g := range grants[r.Role] {
			if g == perm {
				return true
			}
		}
	}
	return false
}

// ErrInvalidPrincipal marks a principal that cannot be created as given
// (the client's mistake, a 400).
var ErrInvalidPrincipal = errors.New("invalid principal")

// ErrUnauthenticated is a missing, unknown, expired or invalid credential.
var ErrUnauthenticated = errors.New("unauthenticated")

// Service authenticates callers and manages principals.
type Service struct {
	st       store.Principals
	sealer   Sealer
	log      *slog.Logger
	now      func() time.Time
	tokenTTL time.Duration
	ext      *oidc.Verifier // nil: no external issuers
	audience string         // required aud of external tokens ("" = any)
	adminH   [32]byte       // hash of the bootstrap administrator token; zero: none
	audit    audit.Recorder

	mu    sync.Mutex
	cache map[[32]byte]cachedToken
}

type cachedToken struct {
	p       *Principal
	expires time.Time
	checked time.Time
}

// Config configures the Service.
type Config struct {
	Now      func() time.Time
	TokenTTL time.Duration // lifetime of issued access tokens; default 1 h
	// External verifies JWTs of external OpenID Connect issuers; tokens are
	// mapped to principals created with an OIDC subject "issuer|sub".
	External *oidc.Verifier
	Audience string
	// AdminTokenHash is SHA-256 of the bootstrap administrator token (the
	// dev token, or --admin-token-file); it authenticates as "admin".
	AdminTokenHash [32]byte
	// Audit records every principal and role change with the change
	// (fail closed). Default: the audit log of the store, when it is a
	// whole store.
	Audit audit.Recorder
	// Log receives integrity alerts (a row that fails its tag). Default:
	// discarded.
	Log *slog.Logger
}

// New returns a Service over st whose rows are authenticated with sealer
// (the root; see integrity.go).
func New(st store.Principals, sealer Sealer, cfg Config) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = time.Hour
	}
	if full, ok := st.(store.Store); ok && cfg.Audit == nil {
		cfg.Audit = audit.Store{St: full, Now: cfg.Now}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Service{st: st, sealer: sealer, log: cfg.Log, now: cfg.Now, tokenTTL: cfg.TokenTTL, ext: cfg.External, audience: cfg.Audience,
		adminH: cfg.AdminTokenHash, audit: cfg.Audit, cache: map[[32]byte]cachedToken{}}
}

const tokenPrefix = "kura_at_"

// recheck bounds how long a token's principal and roles are served from
// memory: a revoked role or deleted principal takes effect within it.
const recheck = 5 * time.Second

// Authenticate resolves a bearer token to a principal.
func (s *Service) Authenticate(ctx context.Context, bearer string) (*Principal, error) {
	if bearer == "" {
		return nil, ErrUnauthenticated
	}
	h := sha256.Sum256([]byte(bearer))
	if s.adminH != ([32]byte{}) && subtle.ConstantTimeCompare(h[:], s.adminH[:]) == 1 {
		return &Principal{ID: "admin", Name: "admin", Roles: []store.RoleAssignment{{PrincipalID: "admin", Role: Administrator, Scope: "/"}}}, nil
	}
	now := s.now()
	if strings.HasPrefix(bearer, tokenPrefix) {
		s.mu.Lock()
		c, ok := s.cache[h]
		s.mu.Unlock()
		if ok && now.Before(c.expires) && now.Sub(c.checked) < recheck {
			return c.p, nil
		}
		t, err := s.st.GetAccessToken(ctx, h[:])
		if errors.Is(err, store.ErrNotFound) {
			return nil, ErrUnauthenticated
		}
		if err != nil {
			return nil, err
		}
		if !now.Before(t.Expires) {
			return nil, fmt.Errorf("%w: access token expired", ErrUnauthenticated)
		}
		p, sp, err := s.principal(ctx, t.PrincipalID)
		if err != nil {
			return nil, err
		}
		if err := s.verify(ctx, "access token of principal "+strconv.Quote(sp.Name), t.MAC, tokenAAD(t, sp)); err != nil {
			if errors.Is(err, ErrTampered) {
				return nil, fmt.Errorf("%w: %v", ErrUnauthenticated, err)
			}
			return nil, err
		}
		s.mu.Lock()
		if len(s.cache) > 10000 {
			clear(s.cache)
		}
		s.cache[h] = cachedToken{p: p, expires: t.Expires, checked: now}
		s.mu.Unlock()
		return p, nil
	}
	if s.ext != nil && strings.Count(bearer, ".") == 2 {
		claims, err := s.ext.Verify(ctx, bearer)
		if err != nil {
			var ue *oidc.UnavailableError
			if errors.As(err, &ue) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: %v", ErrUnauthenticated, err)
		}
		if s.audience != "" && !hasAudience(claims["aud"], s.audience) {
			return nil, fmt.Errorf("%w: token audience is not %s", ErrUnauthenticated, s.audience)
		}
		iss, _ := claims["iss"].(string)
		sub, _ := claims["sub"].(string)
		if sub == "" {
			return nil, fmt.Errorf("%w: token has no sub claim", ErrUnauthenticated)
		}
		p, err := s.st.GetPrincipalBySubject(ctx, oidc.NormalizeIssuer(iss)+"|"+sub)
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("%w: no principal is bound to subject %q of %s", ErrUnauthenticated, sub, iss)
		}
		if err != nil {
			return nil, err
		}
		pp, _, err := s.principal(ctx, p.ID)
		return pp, err
	}
	return nil, ErrUnauthenticated
}

func hasAudience(aud any, want string) bool {
	switch a := aud.(type) {
	case string:
		return a == want
	case []any:
		for _, x := range a {
			if s, ok := x.(string); ok && s == want {
				return true
			}
		}
	}
	return false
}

// principal loads an authenticated caller's principal and roles; a row
// that fails its integrity check authenticates no one.
func (s *Service) principal(ctx context.Context, id string) (*Principal, store.Principal, error) {
	p, roles, err := s.loadPrincipal(ctx, s.st, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, p, ErrUnauthenticated
	case errors.Is(err, ErrTampered):
		return nil, p, fmt.Errorf("%w: %v", ErrUnauthenticated, err)
	case err != nil:
		return nil, p, err
	}
	return &Principal{ID: p.ID, Name: p.Name, Roles: roles}, p, nil
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// ClientCredentials exchanges a client id (or principal name) and secret for
// an access token.
func (s *Service) ClientCredentials(ctx context.Context, clientID, secret string) (string, time.Time, error) {
	p, err := s.st.GetPrincipal(ctx, clientID)
	if errors.Is(err, store.ErrNotFound) {
		p, err = s.st.GetPrincipalByName(ctx, clientID)
	}
	// Hash the presented secret whether or not the principal exists, so
	// timing does not tell which client ids exist.
	h := sha256.Sum256([]byte(secret))
	if errors.Is(err, store.ErrNotFound) {
		return "", time.Time{}, ErrUnauthenticated
	}
	if err != nil {
		return "", time.Time{}, err
	}
	if len(p.SecretHash) != 32 || subtle.ConstantTimeCompare(h[:], p.SecretHash) != 1 {
		return "", time.Time{}, ErrUnauthenticated
	}
	// The row must be kura's (an edited secret hash is an attacker's
	// secret): the secret is compared again with, and the token tagged
	// for, the row that authenticated.
	_, p, err = s.principal(ctx, p.ID)
	if err != nil {
		return "", time.Time{}, err
	}
	if len(p.SecretHash) != 32 || subtle.ConstantTimeCompare(h[:], p.SecretHash) != 1 {
		return "", time.Time{}, ErrUnauthenticated
	}
	tok := tokenPrefix + base64.RawURLEncoding.EncodeToString(random(32))
	th := sha256.Sum256([]byte(tok))
	exp := s.now().Add(s.tokenTTL)
	t := store.AccessToken{Hash: th[:], PrincipalID: p.ID, Expires: exp}
	if t.MAC, err = s.tag(tokenAAD(t, p)); err != nil {
		return "", time.Time{}, err
	}
	if err := s.st.PutAccessToken(ctx, t); err != nil {
		return "", time.Time{}, err
	}
	return tok, exp, nil
}

var principalName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$`)

// NewPrincipal is a principal to create: a client-secret principal, or one
// bound to an external OIDC subject ("issuer|sub"); with a role, it is
// granted at scope ("/" when empty) in the same change.
type NewPrincipal struct {
	Name, OIDCSubject string
	Role, Scope       string
}

// CreatePrincipal creates a principal (and its role, if one is named) as
// one audited change. A client secret is returned once.
func (s *Service) CreatePrincipal(ctx context.Context, np NewPrincipal) (id, secret string, err error) {
	if !principalName.MatchString(np.Name) || np.Name == "admin" {
		return "", "", &fault.Error{Kind: fault.BadInput, Field: "name", Err: ErrInvalidPrincipal,
			Msg: fmt.Sprintf("name %q: 1 to 64 letters, digits, dots, dashes or underscores, not \"admin\"", np.Name)}
	}
	var role *store.RoleAssignment
	if np.Role != "" {
		a, err := Assignment("", np.Role, np.Scope)
		if err != nil {
			return "", "", err
		}
		role = &a
	}
	id = hex.EncodeToString(random(16))
	p := store.Principal{ID: id, Name: np.Name, Created: s.now()}
	if np.OIDCSubject != "" {
		iss, sub, ok := strings.Cut(np.OIDCSubject, "|")
		if !ok || iss == "" || sub == "" {
			return "", "", &fault.Error{Kind: fault.BadInput, Field: "oidc_subject", Err: ErrInvalidPrincipal,
				Msg: fmt.Sprintf("OIDC subject %q must be \"issuer|sub\"", np.OIDCSubject)}
		}
		p.OIDCSubject = oidc.NormalizeIssuer(iss) + "|" + sub
	} else {
		secret = "kura_cs_" + base64.RawURLEncoding.EncodeToString(random(32))
		h := sha256.Sum256([]byte(secret))
		p.SecretHash = h[:]
	}
	details := map[string]string{"name": p.Name}
	if p.OIDCSubject != "" {
		details["oidc_subject"] = p.OIDCSubject
	}
	var roles []store.RoleAssignment
	if role != nil {
		role.PrincipalID = id
		details["role"], details["scope"] = role.Role, role.Scope
		roles = append(roles, *role)
	}
	if p.MAC, err = s.tag(principalAAD(p, roles)); err != nil {
		return "", "", err
	}
	err = s.write(ctx, audit.Event{Action: "principal.create", Object: "principals/" + id, Details: details}, func(tx store.Store) error {
		if err := tx.CreatePrincipal(ctx, p); err != nil {
			return err
		}
		if role != nil {
			return tx.AddRole(ctx, *role)
		}
		return nil
	})
	if err != nil {
		return "", "", err
	}
	return id, secret, nil
}

// ResetSecret gives a principal a new client secret (returned once).
// A federated principal (an OIDC subject) has no secret and gets none.
func (s *Service) ResetSecret(ctx context.Context, id string) (string, error) {
	p, _, err := s.loadPrincipal(ctx, s.st, id)
	if err != nil {
		return "", principalErr(err, id)
	}
	if p.OIDCSubject != "" {
		return "", fault.Bad("", "principal %q signs in through its OIDC issuer (%s) and has no client secret", p.Name, p.OIDCSubject)
	}
	secret := "kura_cs_" + base64.RawURLEncoding.EncodeToString(random(32))
	h := sha256.Sum256([]byte(secret))
	err = s.write(ctx, audit.Event{Action: "principal.reset-secret", Object: "principals/" + id},
		func(tx store.Store) error {
			return s.retag(ctx, tx, id, func() error { return tx.SetPrincipalSecret(ctx, id, h[:]) })
		})
	if err != nil {
		return "", err
	}
	s.forgetTokens() // tokens issued with the old secret are revoked
	return secret, nil
}

// DeletePrincipal deletes a principal with its roles and tokens.
func (s *Service) DeletePrincipal(ctx context.Context, id string) error {
	err := s.write(ctx, audit.Event{Action: "principal.delete", Object: "principals/" + id},
		func(tx store.Store) error { return tx.DeletePrincipal(ctx, id) })
	if err == nil {
		s.forgetTokens()
	}
	return err
}

// Assignment checks a role and scope ("/" when empty) for principalID.
func Assignment(principalID, role, scope string) (store.RoleAssignment, error) {
	if scope == "" {
		scope = "/"
	}
	if err := ValidRole(role); err != nil {
		return store.RoleAssignment{}, &fault.Error{Kind: fault.BadInput, Field: "role", Msg: err.Error()}
	}
	if err := ValidScope(scope); err != nil {
		return store.RoleAssignment{}, &fault.Error{Kind: fault.BadInput, Field: "scope", Msg: err.Error()}
	}
	if (role == LedgerAdministrator || role == LedgerContributor || role == LedgerReader) && scope != "/" {
		// A ledger role over one key would grant nothing: refused, not kept.
		return store.RoleAssignment{}, &fault.Error{Kind: fault.BadInput, Field: "scope", Msg: fmt.Sprintf("the ledger role %s is granted over \"/\" only, not %q", role, scope)}
	}
	return store.RoleAssignment{PrincipalID: principalID, Role: role, Scope: scope}, nil
}

// AddRole grants a role (idempotent).
// It applies to tokens already issued at once.
func (s *Service) AddRole(ctx context.Context, a store.RoleAssignment) error {
	err := s.write(ctx, audit.Event{Action: "role.add", Object: "principals/" + a.PrincipalID, Details: map[string]string{"role": a.Role, "scope": a.Scope}},
		func(tx store.Store) error {
			return s.retag(ctx, tx, a.PrincipalID, func() error { return tx.AddRole(ctx, a) })
		})
	if err == nil {
		s.forgetTokens()
	}
	return err
}

// RemoveRole revokes a role; it applies to tokens already issued at once.
func (s *Service) RemoveRole(ctx context.Context, a store.RoleAssignment) error {
	err := s.write(ctx, audit.Event{Action: "role.remove", Object: "principals/" + a.PrincipalID, Details: map[string]string{"role": a.Role, "scope": a.Scope}},
		func(tx store.Store) error {
			return s.retag(ctx, tx, a.PrincipalID, func() error { return tx.RemoveRole(ctx, a) })
		})
	if err == nil {
		s.forgetTokens()
	}
	return err
}

// SetLedgerRole makes role (a ledger role, or "" for none) the
// principal's only ledger role, in one audited change, as ACL's
// PATCH /app/users/{id} does.
func (s *Service) SetLedgerRole(ctx context.Context, id, role string) error {
	if role != "" && role != LedgerAdministrator && role != LedgerContributor && role != LedgerReader {
		return &fault.Error{Kind: fault.BadInput, Field: "assignedRole", Msg: fmt.Sprintf("%q is not a ledger role", role)}
	}
	err := s.write(ctx, audit.Event{Action: "role.ledger", Object: "principals/" + id, Details: map[string]string{"role": role}},
		func(tx store.Store) error {
			return s.retag(ctx, tx, id, func() error {
				roles, err := tx.Roles(ctx, id)
				if err != nil {
					return err
				}
				for _, r := range roles {
					if r.Role == LedgerAdministrator || r.Role == LedgerContributor || r.Role == LedgerReader {
						if err := tx.RemoveRole(ctx, r); err != nil {
							return err
						}
					}
				}
				if role == "" {
					return nil
				}
				return tx.AddRole(ctx, store.RoleAssignment{PrincipalID: id, Role: role, Scope: "/"})
			})
		})
	if err == nil {
		s.forgetTokens()
	}
	return err
}

// Principal returns a principal and its roles.
func (s *Service) Principal(ctx context.Context, id string) (store.Principal, []store.RoleAssignment, error) {
	p, roles, err := s.loadPrincipal(ctx, s.st, id)
	if err != nil {
		return store.Principal{}, nil, principalErr(err, id)
	}
	return p, roles, nil
}

// Principals lists the principals.
func (s *Service) Principals(ctx context.Context) ([]store.Principal, error) {
	ps, err := s.st.ListPrincipals(ctx)
	if err != nil {
		return nil, principalErr(err, "")
	}
	return ps, nil
}

func (s *Service) forgetTokens() {
	s.mu.Lock()
	clear(s.cache)
	s.mu.Unlock()
}

// write applies a change through the audit recorder: both or neither.
func (s *Service) write(ctx context.Context, e audit.Event, change func(tx store.Store) error) error {
	err := audit.Apply(ctx, s.audit, e, change)
	if fault.Of(err) == fault.Unavailable {
		return err
	}
	return principalErr(err, strings.TrimPrefix(e.Object, "principals/"))
}

// principalErr turns store errors into domain errors.
func principalErr(err error, id string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return &fault.Error{Kind: fault.NotFound, Msg: fmt.Sprintf("no principal %q or no such role assignment", id), Err: err}
	case errors.Is(err, store.ErrConflict):
		return &fault.Error{Kind: fault.Conflict, Msg: "a principal with that name or subject exists", Err: err}
	}
	if _, ok := fault.As(err); ok {
		return err
	}
	return fault.Down("the identity store is unavailable", err)
}

// ValidScope checks a scope: "/" or "/keys/<name>".
func ValidScope(scope string) error {
	if scope == "/" {
		return nil
	}
	name, ok := strings.CutPrefix(scope, "/keys/")
	if !ok || name == "" || strings.Contains(name, "/") {
		return fmt.Errorf("scope %q: use \"/\" for all keys or \"/keys/<name>\" for one", scope)
	}
	return nil
}

// ValidRole checks a role name.
func ValidRole(role string) error {
	if _, ok := grants[role]; !ok {
		return fmt.Errorf("role %q is unknown (%s)", role, strings.Join(Roles, ", "))
	}
	return nil
}

// Sweep deletes expired access tokens.
func (s *Service) Sweep(ctx context.Context) error { return s.st.DeleteExpiredTokens(ctx, s.now()) }
