package keys

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kura-project/kura/internal/fault"
	"github.com/kura-project/kura/internal/seal"
	"github.com/kura-project/kura/internal/store/sqlite"
)

func manager(t *testing.T, clock *time.Time) *Manager {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "kura.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	root, err := seal.OpenSoftwareRoot(filepath.Join(t.TempDir(), "root"), bytes.Repeat([]byte{3}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return New(st, seal.New(root), Config{Now: func() time.Time { return *clock }, RecoverableDays: 7})
}

func kind_(err error) fault.Kind {
	if e, ok := fault.As(err); ok {
		return e.Kind
	}
	return -1
}

// TestMaintain: the background job rotates keys whose policy is due and
// purges deleted keys whose retention has passed, and nothing earlier.
func TestMaintain(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	m := manager(t, &now)
	log := slog.New(slog.DiscardHandler)
	k, err := m.Create(ctx, "rot", CreateParams{Kty: "EC", Curve: "P-384"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.SetRotationPolicy(ctx, "rot", RotationPolicy{ExpiryTime: "P90D",
		LifetimeActions: []LifetimeAction{{TimeAfterCreate: "P30D", Action: "rotate"}}}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []RotationPolicy{
		{LifetimeActions: []LifetimeAction{{TimeAfterCreate: "P0D", Action: "Rotate"}}},
		{LifetimeActions: []LifetimeAction{{TimeAfterCreate: "PT1M", Action: "Rotate"}}},
		{ExpiryTime: "P90D", LifetimeActions: []LifetimeAction{{TimeBeforeExpiry: "P6DT23H", Action: "Rotate"}}},
		{ExpiryTime: "P27D"},
		{ExpiryTime: "P200Y"},
	} {
		if _, err := m.SetRotationPolicy(ctx, "rot", bad); err == nil {
			t.Errorf("rotation policy %+v accepted", bad)
		}
	}
	if _, err := m.Create(ctx, "gone", CreateParams{Kty: "oct", Size: 128}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Delete(ctx, "gone"); err != nil {
		t.Fatal(err)
	}

	now = now.AddDate(0, 0, 6)
	if err := m.Maintain(ctx, log); err != nil {
		t.Fatal(err)
	}
	if latest, _ := m.Get(ctx, "rot", ""); latest.Version != k.Version {
		t.Error("rotated before the policy was due")
	}
	if _, err := m.GetDeleted(ctx, "gone"); err != nil {
		t.Errorf("purged before its retention passed: %v", err)
	}

	now = now.AddDate(0, 0, 25) // day 31
	if err := m.Maintain(ctx, log); err != nil {
		t.Fatal(err)
	}
	latest, _ := m.Get(ctx, "rot", "")
	if latest.Version == k.Version || latest.Public.Crv != "P-384" || !latest.Expires.Equal(now.AddDate(0, 0, 90)) {
		t.Errorf("after the policy was due: version %s crv %s exp %v", latest.Version, latest.Public.Crv, latest.Expires)
	}
	if _, err := m.GetDeleted(ctx, "gone"); kind_(err) != fault.NotFound {
		t.Errorf("deleted key not purged after its retention: %v", err)
	}
	// The next run does not rotate again: the new version is fresh.
	m.Maintain(ctx, log)
	if again, _ := m.Get(ctx, "rot", ""); again.Version != latest.Version {
		t.Error("rotated twice")
	}
}

func TestReleasePolicyRules(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	m := manager(t, &now)
	pol := []byte(`{"version":"1.0.0","anyOf":[{"authority":"https://a","allOf":[{"claim":"x","equals":"y"}]}]}`)
	tr := true
	for _, c := range []struct {
		name string
		p    CreateParams
		want string
	}{
		{"exportable without policy", CreateParams{Kty: "EC", Attributes: Attributes{Exportable: &tr}}, "AKV.SKR.1004"},
		{"policy without exportable", CreateParams{Kty: "EC", ReleasePolicy: &ReleasePolicy{Data: pol}}, "AKV.SKR.1005"},
		{"malformed policy", CreateParams{Kty: "EC", Attributes: Attributes{Exportable: &tr}, ReleasePolicy: &ReleasePolicy{Data: []byte(`{"anyOf":[]}`)}}, "release_policy.data"},
	} {
		if _, err := m.Create(ctx, "k", c.p); kind_(err) != fault.BadInput || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	k, err := m.Create(ctx, "imm", CreateParams{Kty: "EC", Attributes: Attributes{Exportable: &tr}, ReleasePolicy: &ReleasePolicy{Data: pol, Immutable: true}})
	if err != nil {
		t.Fatal(err)
	}
	other := []byte(`{"version":"1.0.0","anyOf":[{"authority":"https://b","allOf":[{"claim":"x","equals":"y"}]}]}`)
	if _, err := m.Update(ctx, "imm", "", UpdateParams{ReleasePolicy: &ReleasePolicy{Data: other, Immutable: true}}); !strings.Contains(errString(err), "AKV.SKR.1020") {
		t.Errorf("changing an immutable policy: %v", err)
	}
	f := false
	if _, err := m.Update(ctx, "imm", "", UpdateParams{Attributes: Attributes{Exportable: &f}}); !strings.Contains(errString(err), "AKV.SKR.1003") {
		t.Errorf("changing exportable: %v", err)
	}
	got, _ := m.Get(ctx, "imm", k.Version)
	if !bytes.Equal(got.ReleasePolicy.Data, pol) || !got.ReleasePolicy.Immutable || got.ReleasePolicy.ContentType == "" {
		t.Errorf("stored policy %+v", got.ReleasePolicy)
	}
	// Release material: refused for a non-exportable or disabled key.
	if _, err := m.Create(ctx, "plain", CreateParams{Kty: "EC"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.ReleaseMaterial(ctx, "plain", ""); kind_(err) != fault.Denied {
		t.Errorf("release of a non-exportable key: %v", err)
	}
	if _, _, err := m.ReleaseMaterial(ctx, "imm", ""); err != nil {
		t.Errorf("release material: %v", err)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestDuration(t *testing.T) {
	base := time.Date(2026, 1, 31, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		in   string
		want time.Time
	}{
		{"P90D", base.AddDate(0, 0, 90)}, {"P2Y", base.AddDate(2, 0, 0)}, {"P1M", base.AddDate(0, 1, 0)},
		{"P1W", base.AddDate(0, 0, 7)}, {"PT36H", base.Add(36 * time.Hour)}, {"P1DT2H3M4S", base.AddDate(0, 0, 1).Add(2*time.Hour + 3*time.Minute + 4*time.Second)},
		{"P1Y2M3W4DT5H6M7S", base.AddDate(1, 2, 25).Add(5*time.Hour + 6*time.Minute + 7*time.Second)}, {"P1MT1M", base.AddDate(0, 1, 0).Add(time.Minute)},
	} {
		d, err := ParseDuration(c.in)
		if err != nil || !d.After(base).Equal(c.want) || d.String() != c.in {
			t.Errorf("%s: %v %v", c.in, d.After(base), err)
		}
	}
	for _, bad := range []string{"", "P", "90D", "PT", "P1H", "PTD", "P1.5D", "P99999999D", "P1D2", "P1M1M", "P1D1Y", "PT1S1H", "PT1H1H", "P1DT", "PT99999H99999H99999H99999H99999H99999H99999H99999H99999H99999H99999H99999H99999H99999H99999H99999H99999H99999H99999H99999H99999H99999H99999H99999H99999H99999H"} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// FuzzParseDuration: the rotation-policy duration parser never panics, and
// every duration it accepts is non-negative in each part, re-parses from
// its own text, and moves time forward.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"P90D", "P1Y2M3W4DT5H6M7S", "PT36H", "P1M1M", "PT99999H99999H", "P", "PT", "P1.5D"} {
		f.Add(s)
	}
	base := time.Date(2026, 1, 31, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			return
		}
		if d.Years < 0 || d.Months < 0 || d.Days < 0 || d.Clock < 0 || d.String() != s {
			t.Fatalf("%q parsed to %+v", s, d)
		}
		if d.After(base).Before(base) || d.Before(base).After(base) {
			t.Fatalf("%q moves time backwards: %v %v", s, d.After(base), d.Before(base))
		}
	})
}

// TestAttributeTimesInRange: nbf/exp the store cannot hold exactly (0 means
// unset there; Unix nanoseconds end in 2262) are refused, not wrapped.
func TestAttributeTimesInRange(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	m := manager(t, &now)
	for _, ts := range []int64{0, -5, 253402300799} {
		tm := time.Unix(ts, 0)
		if _, err := m.Create(ctx, "t", CreateParams{Kty: "oct", Size: 128, Attributes: Attributes{Expires: &tm}}); err == nil || !strings.Contains(err.Error(), "attributes.exp") {
			t.Errorf("exp %d: %v", ts, err)
		}
		if _, err := m.Create(ctx, "t", CreateParams{Kty: "oct", Size: 128, Attributes: Attributes{NotBefore: &tm}}); err == nil || !strings.Contains(err.Error(), "attributes.nbf") {
			t.Errorf("nbf %d: %v", ts, err)
		}
	}
	if _, err := m.Get(ctx, "t", ""); err == nil {
		t.Error("a refused create stored a key")
	}
	k, err := m.Create(ctx, "t", CreateParams{Kty: "oct", Size: 128})
	if err != nil {
		t.Fatal(err)
	}
	far := time.Unix(253402300799, 0)
	if _, err := m.Update(ctx, "t", k.Version, UpdateParams{Attributes: Attributes{Expires: &far}}); err == nil {
		t.Error("update to exp in year 9999 accepted")
	}
	ok := time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
	if got, err := m.Update(ctx, "t", k.Version, UpdateParams{Attributes: Attributes{Expires: &ok}}); err != nil || !got.Expires.Equal(ok) {
		t.Errorf("exp 2200: %v %v", got, err)
	}
}

// faultySealer is a root that stops answering (an HSM fault) on demand.
type faultySealer struct {
	Sealer
	down      bool
	downAfter int // >0: the root goes down after this many more opens
}

func (f *faultySealer) Open(sealed, aad []byte) ([]byte, error) {
	if f.downAfter > 0 {
		f.downAfter--
		if f.downAfter == 0 {
			f.down = true
		}
		return f.Sealer.Open(sealed, aad)
	}
	if f.down {
		return nil, errors.New("pkcs11: unwrap: decrypt: CKR_DEVICE_REMOVED")
	}
	return f.Sealer.Open(sealed, aad)
}

// TestRestoreTellsTamperingFromAFault: a backup that does not authenticate
// is the caller's problem (400); a root that cannot answer is not (503).
func TestRestoreTellsTamperingFromAFault(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	m := manager(t, &now)
	fs := &faultySealer{Sealer: m.sealer}
	m.sealer = fs
	if _, err := m.Create(ctx, "b", CreateParams{Kty: "oct", Size: 256}); err != nil {
		t.Fatal(err)
	}
	blob, err := m.Backup(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Delete(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if err := m.Purge(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Clone(blob)
	tampered[len(tampered)-1] ^= 1
	if _, err := m.Restore(ctx, tampered); kind_(err) != fault.BadInput {
		t.Errorf("tampered backup: %v, want BadParameter", err)
	}
	if _, err := m.Restore(ctx, append([]byte(backupMagic), 9, 9)); kind_(err) != fault.BadInput {
		t.Errorf("malformed backup: %v, want BadParameter", err)
	}
	fs.down = true
	_, err = m.Restore(ctx, blob)
	if kind_(err) != fault.Unavailable || strings.Contains(err.Error(), "authenticate") {
		t.Errorf("restore with the root down: %v, want Unavailable", err)
	}
	// The root fails after opening the backup itself: in the version's
	// integrity check, then in its material.
	for after := 1; after <= 2; after++ {
		fs.down, fs.downAfter = false, after
		if _, err := m.Restore(ctx, blob); kind_(err) != fault.Unavailable {
			t.Errorf("root down after %d opens: %v, want Unavailable", after, err)
		}
	}
	fs.down, fs.downAfter = false, 0
	if _, err := m.Restore(ctx, blob); err != nil {
		t.Errorf("restore with the root back: %v", err)
	}
}

// TestForgetDoesNotWipeMaterialInUse: sealing drops the opened material
// but leaves it intact for an operation that already holds it (wiping it
// would have that operation encrypt under a zero key).
func TestForgetDoesNotWipeMaterialInUse(t *testing.T) {
	now := time.Now()
	m, ctx := manager(t, &now), context.Background()
	if _, err := m.Create(ctx, "aes", CreateParams{Kty: "oct-HSM", Size: 256}); err != nil {
		t.Fatal(err)
	}
	v, err := m.version(ctx, "aes", "")
	if err != nil {
		t.Fatal(err)
	}
	mat, err := m.material(v)
	if err != nil {
		t.Fatal(err)
	}
	before := append([]byte(nil), mat.Oct...)
	m.Forget()
	if !bytes.Equal(mat.Oct, before) || bytes.Equal(mat.Oct, make([]byte, len(mat.Oct))) {
		t.Error("Forget wiped material an operation holds")
	}
	if len(m.cache) != 0 || len(m.versions) != 0 {
		t.Error("Forget kept cached material or versions")
	}
}
