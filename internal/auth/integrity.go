package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/kura-project/kura/internal/audit"
	"github.com/kura-project/kura/internal/fault"
	"github.com/kura-project/kura/internal/seal"
	"github.com/kura-project/kura/internal/store"
)

// The database is untrusted: every row that grants something is
// authenticated under the root. A principal's tag covers its own columns
// and its whole role set, so an inserted, deleted, edited or moved role
// row fails its principal; an access token's tag covers its columns and its
// principal's secret hash, so a token row replayed after a secret reset
// fails too. The tag is a root seal of nothing with the row as associated
// data, as key versions are.

// Sealer authenticates rows under the root.
type Sealer interface {
	Seal(plaintext, aad []byte) ([]byte, error)
	Open(sealed, aad []byte) ([]byte, error)
}

// ErrTampered marks a row whose integrity tag does not authenticate it.
var ErrTampered = errors.New("an identity row failed its integrity check (the database was edited outside kura?)")

func digest(parts ...[]byte) []byte {
	h := sha256.New()
	for _, p := range parts {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write(p)
	}
	return h.Sum(nil)
}

func principalAAD(p store.Principal, roles []store.RoleAssignment) []byte {
	set := make([]string, 0, len(roles))
	for _, r := range roles {
		set = append(set, strconv.Quote(r.PrincipalID)+" "+strconv.Quote(r.Role)+" "+strconv.Quote(r.Scope))
	}
	slices.Sort(set)
	rs := make([][]byte, len(set))
	for i, s := range set {
		rs[i] = []byte(s)
	}
	return digest([]byte("kura/principal/v1"), []byte(p.ID), []byte(p.Name), p.SecretHash, []byte(p.OIDCSubject),
		[]byte(strconv.FormatInt(p.Created.UnixNano(), 10)), digest(rs...))
}

func tokenAAD(t store.AccessToken, p store.Principal) []byte {
	return digest([]byte("kura/access-token/v1"), t.Hash, []byte(t.PrincipalID),
		[]byte(strconv.FormatInt(t.Expires.UnixNano(), 10)), p.SecretHash)
}

// tag computes a row's integrity tag.
func (s *Service) tag(aad []byte) ([]byte, error) {
	if s.sealer == nil {
		return nil, fault.Down("the identity store cannot authenticate rows (no root)", nil)
	}
	mac, err := s.sealer.Seal(nil, aad)
	if err != nil {
		return nil, fault.Down("authenticating an identity row failed", err)
	}
	return mac, nil
}

// verify checks a row's tag; a tag that does not authenticate is logged
// as the alert it is. A root that cannot answer (sealed, an HSM down) is
// no verdict on the row: that is a 503, not tampering.
func (s *Service) verify(ctx context.Context, what string, mac, aad []byte) error {
	if s.sealer == nil {
		return fault.Down("the identity store cannot authenticate rows (no root)", nil)
	}
	if len(mac) > 0 {
		_, err := s.sealer.Open(mac, aad)
		if err == nil {
			return nil
		}
		if !errors.Is(err, seal.ErrNotAuthentic) {
			return fault.Down("authenticating an identity row failed (the root did not answer)", err)
		}
	}
	reason := "its integrity tag does not authenticate it"
	if len(mac) == 0 {
		reason = "it has no integrity tag (inserted outside kura; a principal created before schema 3 can be adopted by name: `kura auth adopt --name NAME`)"
	}
	s.log.ErrorContext(ctx, "refused an identity row that fails its integrity check", "row", what, "reason", reason)
	return &fault.Error{Kind: fault.Unavailable, Msg: fmt.Sprintf("%s failed its integrity check: %s", what, reason), Err: ErrTampered}
}

// loadPrincipal reads a principal with its roles from st and checks them.
func (s *Service) loadPrincipal(ctx context.Context, st store.Principals, id string) (store.Principal, []store.RoleAssignment, error) {
	p, err := st.GetPrincipal(ctx, id)
	if err != nil {
		return p, nil, err
	}
	roles, err := st.Roles(ctx, id)
	if err != nil {
		return p, nil, err
	}
	if err := s.verify(ctx, "principal "+strconv.Quote(p.Name), p.MAC, principalAAD(p, roles)); err != nil {
		return p, nil, err
	}
	return p, roles, nil
}

// retag changes a principal inside tx: the current rows must authenticate
// (a change never blesses an edit), then the principal is tagged anew over
// what the change left.
func (s *Service) retag(ctx context.Context, tx store.Store, id string, change func() error) error {
	if _, _, err := s.loadPrincipal(ctx, tx, id); err != nil {
		return err
	}
	if err := change(); err != nil {
		return err
	}
	p, err := tx.GetPrincipal(ctx, id)
	if err != nil {
		return err
	}
	roles, err := tx.Roles(ctx, id)
	if err != nil {
		return err
	}
	mac, err := s.tag(principalAAD(p, roles))
	if err != nil {
		return err
	}
	return tx.SetPrincipalMAC(ctx, id, mac)
}

// Adopted is a principal an administrator adopted, with the roles it had.
type Adopted struct {
	ID, Name string
	Roles    []store.RoleAssignment
}

// Adopt tags the named principals that have no integrity tag: those of a
// database from before schema 3. It trusts their rows as they are now, so
// it is an administrator's explicit, audited act over names the
// administrator checked (a row inserted without a tag looks the same); the
// principals and their roles are returned and recorded.
func (s *Service) Adopt(ctx context.Context, names []string) ([]Adopted, error) {
	if len(names) == 0 {
		return nil, fault.Bad("names", "name the principals to adopt")
	}
	// Read first, so that the record names each principal with its roles;
	// the change then tags only rows still exactly as read.
	var out []Adopted
	var read []store.Principal // as first read: the change tags only these rows, unchanged
	details := map[string]string{}
	for _, name := range slices.Compact(slices.Sorted(slices.Values(names))) {
		p, err := s.st.GetPrincipalByName(ctx, name)
		if err != nil {
			return nil, principalErr(err, name)
		}
		if len(p.MAC) != 0 {
			return nil, fault.Conflicting("principal %q has an integrity tag already: only untagged principals are adopted", name)
		}
		roles, err := s.st.Roles(ctx, p.ID)
		if err != nil {
			return nil, principalErr(err, name)
		}
		var rs []string
		for _, r := range roles {
			rs = append(rs, r.Role+"@"+r.Scope)
		}
		details[p.Name] = strings.Join(rs, ",")
		out = append(out, Adopted{ID: p.ID, Name: p.Name, Roles: roles})
		read = append(read, p)
	}
	err := s.write(ctx, audit.Event{Action: "principal.adopt", Object: "principals", Details: details}, func(tx store.Store) error {
		for i, a := range out {
			p, err := tx.GetPrincipal(ctx, a.ID)
			if err != nil {
				return err
			}
			roles, err := tx.Roles(ctx, a.ID)
			if err != nil {
				return err
			}
			aad := principalAAD(p, roles)
			if len(p.MAC) != 0 || !bytes.Equal(aad, principalAAD(read[i], a.Roles)) {
				return fault.Conflicting("principal %q changed while it was being adopted; look again", a.Name)
			}
			mac, err := s.tag(aad)
			if err != nil {
				return err
			}
			if err := tx.SetPrincipalMAC(ctx, a.ID, mac); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.forgetTokens()
	return out, nil
}
