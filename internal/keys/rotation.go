package keys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/kura-project/kura/internal/fault"
	"github.com/kura-project/kura/internal/keys/keyops"
	"github.com/kura-project/kura/internal/seal"
	"github.com/kura-project/kura/internal/store"
)

// backupMagic starts every backup blob, so a blob from elsewhere is refused
// with a clear message before any decryption is tried.
const backupMagic = "kura-key-backup-v1:"

var backupAAD = []byte("kura/key-backup/v1")

type backupDoc struct {
	Name     string                `json:"name"`
	Versions []store.KeyVersion    `json:"versions"`
	Policy   *store.RotationPolicy `json:"rotation_policy,omitempty"`
}

// Backup returns an opaque blob with every version of a key, encrypted and
// authenticated under this instance's root. The versions' material stays
// sealed inside it too, so the blob restores only where the same root is.
func (m *Manager) Backup(ctx context.Context, name string) ([]byte, error) {
	if _, err := m.version(ctx, name, ""); err != nil {
		return nil, err
	}
	doc := backupDoc{Name: name}
	after := ""
	for {
		vs, err := m.st.ListKeyVersions(ctx, name, after, 1000)
		if err != nil {
			return nil, storeErr(err, fmt.Sprintf("a key with name %q", name))
		}
		doc.Versions = append(doc.Versions, vs...)
		if len(vs) < 1000 {
			break
		}
		after = vs[len(vs)-1].Version
	}
	if p, err := m.st.GetRotationPolicy(ctx, name); err == nil {
		doc.Policy = &p
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, storeErr(err, "rotation policy")
	}
	plain, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	sealed, err := m.sealer.Seal(plain, backupAAD)
	if err != nil {
		return nil, &fault.Error{Kind: fault.Unavailable, Msg: "sealing the backup failed", Err: err}
	}
	return append([]byte(backupMagic), sealed...), nil
}

// Restore recreates a key from a Backup blob. The key must not exist, even
// deleted (409).
func (m *Manager) Restore(ctx context.Context, blob []byte) (*Key, error) {
	rest, ok := strings.CutPrefix(string(blob), backupMagic)
	if !ok {
		return nil, bad("value: not a kura key backup")
	}
	plain, err := m.sealer.Open([]byte(rest), backupAAD)
	if err != nil {
		if !errors.Is(err, seal.ErrNotAuthentic) {
			return nil, rootUnavailable(err)
		}
		return nil, bad("value: the backup does not authenticate under this instance's root (altered, or from another root)")
	}
	var doc backupDoc
	if err := json.Unmarshal(plain, &doc); err != nil || len(doc.Versions) == 0 {
		return nil, bad("value: the backup is malformed")
	}
	for _, v := range doc.Versions {
		if v.Name != doc.Name {
			return nil, bad("value: the backup is malformed")
		}
		if err := m.checkMAC(v); err != nil {
			if !errors.Is(err, seal.ErrNotAuthentic) {
				return nil, rootUnavailable(err)
			}
			return nil, bad("value: a version in the backup fails its integrity check")
		}
		// The material must open under this root before anything is stored.
		if _, err := m.material(v); err != nil {
			switch {
			case errors.Is(err, errCorruptMaterial):
				return nil, bad("value: the backup's key material is corrupt")
			case !errors.Is(err, seal.ErrNotAuthentic):
				return nil, rootUnavailable(err)
			}
			return nil, bad("value: the backup's key material does not open under this instance's root")
		}
	}
	defer m.forget(doc.Name)
	if err := m.write(ctx, "key.restore", doc.Name, "", func(st store.Keys) error { return st.RestoreKey(ctx, doc.Versions, doc.Policy) }); err != nil {
		if ke := (*fault.Error)(nil); errors.As(err, &ke) {
			return nil, err
		}
		if errors.Is(err, store.ErrConflict) {
			return nil, &fault.Error{Kind: fault.Conflict, Msg: fmt.Sprintf("key %q already exists (or is deleted but recoverable)", doc.Name)}
		}
		return nil, storeErr(err, fmt.Sprintf("key %q", doc.Name))
	}
	return m.Get(ctx, doc.Name, "")
}

// RotationPolicy is a key's rotation policy.
type RotationPolicy struct {
	LifetimeActions []LifetimeAction `json:"lifetimeActions"`
	ExpiryTime      string           `json:"expiryTime,omitempty"`
	Created         time.Time        `json:"-"`
	Updated         time.Time        `json:"-"`
}

// LifetimeAction is one trigger and action of a rotation policy.
type LifetimeAction struct {
	TimeAfterCreate  string `json:"timeAfterCreate,omitempty"`
	TimeBeforeExpiry string `json:"timeBeforeExpiry,omitempty"`
	Action           string `json:"action"` // Rotate or Notify
}

// defaultRotationPolicy is what a key without a policy reports, as Key Vault
// does: notify 30 days before expiry, no automatic rotation.
func defaultRotationPolicy() RotationPolicy {
	return RotationPolicy{LifetimeActions: []LifetimeAction{{TimeBeforeExpiry: "P30D", Action: "Notify"}}}
}

// validate checks a rotation policy as Key Vault does and normalises action
// names.
func (p *RotationPolicy) validate() error {
	if len(p.LifetimeActions) > 2 {
		return bad("lifetimeActions: at most 2 (one Rotate, one Notify), got %d", len(p.LifetimeActions))
	}
	if p.ExpiryTime != "" {
		if err := checkDuration("attributes.expiryTime", p.ExpiryTime, 28); err != nil {
			return err
		}
	}
	seen := map[string]bool{}
	for i := range p.LifetimeActions {
		a := &p.LifetimeActions[i]
		switch strings.ToLower(a.Action) {
		case "rotate":
			a.Action = "Rotate"
		case "notify":
			a.Action = "Notify"
		default:
			return bad("lifetimeActions[%d].action.type: %q is neither Rotate nor Notify", i, a.Action)
		}
		if seen[a.Action] {
			return bad("lifetimeActions[%d]: a second %s action", i, a.Action)
		}
		seen[a.Action] = true
		if (a.TimeAfterCreate == "") == (a.TimeBeforeExpiry == "") {
			return bad("lifetimeActions[%d].trigger: set exactly one of timeAfterCreate and timeBeforeExpiry", i)
		}
		// Key Vault's floor: a trigger at least 7 days from creation or
		// expiry, so that a policy cannot mint a version every minute.
		if a.TimeAfterCreate != "" {
			if err := checkDuration(fmt.Sprintf("lifetimeActions[%d].trigger.timeAfterCreate", i), a.TimeAfterCreate, 7); err != nil {
				return err
			}
		}
		if a.TimeBeforeExpiry != "" {
			if err := checkDuration(fmt.Sprintf("lifetimeActions[%d].trigger.timeBeforeExpiry", i), a.TimeBeforeExpiry, 7); err != nil {
				return err
			}
			if p.ExpiryTime == "" && a.Action == "Rotate" {
				return bad("lifetimeActions[%d]: timeBeforeExpiry needs attributes.expiryTime", i)
			}
		}
	}
	return nil
}

// checkDuration parses a policy duration and holds it between minDays and
// 100 years (an expiry beyond that would not fit the store's time range).
func checkDuration(field, s string, minDays int) error {
	d, err := ParseDuration(s)
	if err != nil {
		return bad("%s: %v", field, err)
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if d.After(base).Before(base.AddDate(0, 0, minDays)) {
		return bad("%s %s: must be at least %d days (P%dD)", field, s, minDays, minDays)
	}
	if d.After(base).After(base.AddDate(100, 0, 0)) {
		return bad("%s %s: must be at most 100 years (P100Y)", field, s)
	}
	return nil
}

// GetRotationPolicy returns a key's rotation policy (the default when none
// was set).
func (m *Manager) GetRotationPolicy(ctx context.Context, name string) (*RotationPolicy, error) {
	if _, err := m.version(ctx, name, ""); err != nil {
		return nil, err
	}
	sp, err := m.st.GetRotationPolicy(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		p := defaultRotationPolicy()
		return &p, nil
	}
	if err != nil {
		return nil, storeErr(err, "rotation policy")
	}
	var p RotationPolicy
	if err := json.Unmarshal(sp.JSON, &p); err != nil {
		return nil, &fault.Error{Kind: fault.Unavailable, Msg: "stored rotation policy is corrupt", Err: err}
	}
	p.Created, p.Updated = sp.Created, sp.Updated
	return &p, nil
}

// SetRotationPolicy validates and stores a key's rotation policy.
func (m *Manager) SetRotationPolicy(ctx context.Context, name string, p RotationPolicy) (*RotationPolicy, error) {
	if _, err := m.version(ctx, name, ""); err != nil {
		return nil, err
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	now := m.now()
	created := now
	if old, err := m.st.GetRotationPolicy(ctx, name); err == nil {
		created = old.Created
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	if err := m.write(ctx, "key.rotation-policy.set", name, "", func(st store.Keys) error {
		return st.PutRotationPolicy(ctx, store.RotationPolicy{Name: name, JSON: b, Created: created, Updated: now})
	}); err != nil {
		if ke := (*fault.Error)(nil); errors.As(err, &ke) {
			return nil, err
		}
		return nil, storeErr(err, "rotation policy")
	}
	p.Created, p.Updated = created, now
	return &p, nil
}

// Rotate makes a new version of a key with the same type, size, operations,
// tags and release settings; with a rotation policy that sets expiryTime,
// the new version expires that long after its creation.
func (m *Manager) Rotate(ctx context.Context, name string) (*Key, error) {
	// Uncached: a key deleted a moment ago (or on another node) must not
	// come back as a new version.
	v, err := m.fresh(ctx, name, "")
	if err != nil {
		return nil, err
	}
	old, err := m.material(v)
	if err != nil {
		return nil, err
	}
	exp := 0
	if old.RSA != nil {
		exp = old.RSA.E // a rotated key keeps its public exponent
	}
	mat, err := keyops.Generate(v.Kty, old.Size(), old.Curve(), exp)
	if err != nil {
		return nil, bad("%v", err)
	}
	a := Attributes{Enabled: ptr(true), Exportable: ptr(v.Exportable)}
	if p, err := m.GetRotationPolicy(ctx, name); err == nil && p.ExpiryTime != "" {
		d, err := ParseDuration(p.ExpiryTime)
		if err != nil {
			return nil, &fault.Error{Kind: fault.Unavailable, Msg: "stored rotation policy is corrupt", Err: err}
		}
		a.Expires = ptr(d.After(m.now()))
	}
	var rp *ReleasePolicy
	if v.ReleasePolicy != nil {
		rp = &ReleasePolicy{}
		if err := json.Unmarshal(v.ReleasePolicy, rp); err != nil {
			return nil, &fault.Error{Kind: fault.Unavailable, Msg: "stored release policy is corrupt", Err: err}
		}
	}
	return m.addVersion(ctx, name, v.Kty, mat, v.KeyOps, a, v.Tags, rp)
}

func ptr[T any](v T) *T { return &v }

// addVersion stores a new version of an existing key.
func (m *Manager) addVersion(ctx context.Context, name, kty string, mat *keyops.Material, ops []string, a Attributes, tags map[string]string, rp *ReleasePolicy) (*Key, error) {
	return m.store(ctx, "key.rotate", name, kty, mat, ops, a, tags, rp)
}

// Maintain runs the background duties once: purging deleted keys whose
// retention has passed, and rotating keys whose policy says so. It returns
// the first error but keeps going through the rest.
func (m *Manager) Maintain(ctx context.Context, log *slog.Logger) error {
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	now := m.now()
	names, err := m.st.PurgeDue(ctx, now)
	keep(err)
	for _, n := range names {
		if err := m.Purge(ctx, n); err != nil {
			keep(err)
			continue
		}
		log.Info("purged deleted key after its retention period", "key", n)
	}
	pols, err := m.st.ListRotationPolicies(ctx)
	keep(err)
	for _, sp := range pols {
		// A stored policy is checked again before it acts: an unparsable
		// duration would otherwise read as zero and rotate on every tick.
		var p RotationPolicy
		if err := json.Unmarshal(sp.JSON, &p); err != nil {
			keep(fmt.Errorf("rotation policy of %s: %w", sp.Name, err))
			continue
		}
		if err := p.validate(); err != nil {
			keep(fmt.Errorf("rotation policy of %s: %w", sp.Name, err))
			continue
		}
		v, err := m.fresh(ctx, sp.Name, "")
		if err != nil {
			var ke *fault.Error
			if !errors.As(err, &ke) || ke.Kind != fault.NotFound {
				keep(err)
			}
			continue
		}
		for _, a := range p.LifetimeActions {
			var due bool
			if a.TimeAfterCreate != "" {
				d, _ := ParseDuration(a.TimeAfterCreate)
				due = !now.Before(d.After(v.Created))
			} else if !v.Expires.IsZero() {
				d, _ := ParseDuration(a.TimeBeforeExpiry)
				due = !now.Before(d.Before(v.Expires))
			}
			if !due {
				continue
			}
			switch a.Action {
			case "Rotate":
				k, err := m.Rotate(ctx, sp.Name)
				if err != nil {
					keep(err)
					continue
				}
				log.Info("rotated key by its rotation policy", "key", sp.Name, "version", k.Version)
			case "Notify":
				log.Warn("key rotation policy notification", "key", sp.Name, "version", v.Version, "expires", v.Expires)
			}
		}
	}
	return first
}
