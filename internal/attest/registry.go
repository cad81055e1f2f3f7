package attest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/kura-project/kura/internal/store"
)

// PermitAll is the default appraisal policy of the TEE modules: every
// piece of evidence that verified is permitted (hardware verification has
// refused anything forged), and the token's claims carry everything a
// relying party, such as a key-release policy, judges.
const PermitAll = "version=1.0;\nauthorizationrules\n{\n    => permit();\n};\nissuancerules\n{\n};\n"

// A Module is one TEE's registration: everything the server, the appraisal,
// the MAA surface, the configuration and the CLI need to know about a TEE,
// so that none of them names one. Adding a TEE is one package that returns
// a Module and one Register line (internal/attest/tees).
type Module struct {
	// Type is the canonical MAA attestation type, as in POST /attest/{Type}
	// ("SevSnpVm"); requests match it without regard to case.
	Type string
	// Member is the member of the attest request body that carries the
	// evidence ("report" for SevSnpVm, "quote" for the Intel types).
	Member string
	// ReportDataField and InitDataField name the evidence fields that
	// runtime data and init-time data are bound to (SHA-256 in their first
	// 32 bytes), for the binding errors; an empty InitDataField means the
	// TEE has no launch-time field and init-time data is refused.
	ReportDataField, InitDataField string
	// BinaryRuntimeClaim is the claim that runtime data of dataType
	// Binary becomes, base64url (MAA: x-ms-sgx-ehd for the SGX types);
	// empty: none.
	BinaryRuntimeClaim string
	// DefaultPolicy is the appraisal policy in force until an operator
	// sets one.
	DefaultPolicy string
	// Collateral lists the collateral kinds the verifier reads from the
	// collateral store ("vcek", "crl", ...).
	Collateral []string
	// Settings are the configuration settings the module owns; their
	// values reach New and Preflight through Deps.Setting.
	Settings []Setting
	// New builds the TEE's verifier from the shared dependencies.
	New func(Deps) (*TEE, error)
	// Preflight checks, without building anything that needs the root,
	// the configuration New will read (trust root files, settings), so a
	// sealed server reports a typo at start.
	Preflight func(Deps) error
}

// Deps are the shared dependencies every TEE module is built from.
type Deps struct {
	// Collateral is the collateral cache's store (kinds and keys are the
	// module's own).
	Collateral CollateralStore
	// Now is the clock of validity checks and caches.
	Now func() time.Time
	// DataDir is kura's data directory; Simulator set means the simulated
	// TEE root in DataDir/sim is trusted (--dev or trust_simulator).
	DataDir   string
	Simulator bool
	// TrustRoots are PEM bundle files of extra vendor roots to pin. A
	// module takes the bundles of its vendor (RootsFor).
	TrustRoots []string
	// Setting returns the configured text of one of the module's
	// settings, or "" when it is not set (the module's default applies).
	Setting func(key string) string
}

// TEE is a built module: its verifier and, when the TEE has offline
// collateral an operator can import, the importer.
type TEE struct {
	Verifier Verifier
	// Import stores collateral files of the TEE's vendor (certificates,
	// CRLs); nil when there is none. It returns ErrNotMine for a file
	// that is not its vendor's, so `kura collateral import` can offer a
	// file to every TEE.
	Import func(ctx context.Context, data []byte) (int, error)
}

// ErrNotMine is returned by TEE.Import for collateral of another vendor.
var ErrNotMine = errors.New("not this TEE's collateral")

// CollateralStore is the store of cached verification collateral. Nothing
// in it is trusted for being stored: modules verify every item on use.
type CollateralStore interface {
	PutCollateral(ctx context.Context, c store.Collateral) error
	Collateral(ctx context.Context, kind, key string) ([]store.Collateral, error)
}

// A Setting is one configuration value a module owns. In the config file
// it is the member Key; in the environment KURA_ and Key in upper case; as a
// command-line flag (when Flag is set) Key with dashes.
type Setting struct {
	Key     string
	Kind    SettingKind
	Default string // as text; shown in the help
	Usage   string
	Flag    bool
}

// SettingKind is how a setting's text is read.
type SettingKind int

const (
	String   SettingKind = iota
	Bool                 // strconv.ParseBool
	Duration             // time.ParseDuration, positive ("10s")
)

// Registry holds the registered TEE modules, keyed by attestation type.
type Registry struct {
	mods map[string]Module // by lower-cased type
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{mods: map[string]Module{}} }

// Register adds m. A module without a type, evidence member or constructor,
// a second module for the same type, or a setting key another module owns
// is refused: these are programming errors, found by the registry's tests.
func (r *Registry) Register(m Module) error {
	switch {
	case m.Type == "" || m.Member == "" || m.New == nil || m.ReportDataField == "":
		return fmt.Errorf("attest: module %q needs a type, an evidence member, a report-data field and a constructor", m.Type)
	case m.DefaultPolicy == "":
		return fmt.Errorf("attest: module %q has no default policy", m.Type)
	}
	key := strings.ToLower(m.Type)
	if _, dup := r.mods[key]; dup {
		return fmt.Errorf("attest: attestation type %q is registered twice", m.Type)
	}
	for _, s := range m.Settings {
		for _, o := range r.mods {
			for _, os := range o.Settings {
				if os.Key == s.Key {
					return fmt.Errorf("attest: setting %q of %s is already owned by %s", s.Key, m.Type, o.Type)
				}
			}
		}
	}
	r.mods[key] = m
	return nil
}

// Lookup returns the module of an attestation type, matched without case
// (MAA clients send "azureGuest" and "AzureGuest" alike).
func (r *Registry) Lookup(typ string) (Module, bool) {
	m, ok := r.mods[strings.ToLower(typ)]
	return m, ok
}

// Modules returns the modules in type order.
func (r *Registry) Modules() []Module {
	out := make([]Module, 0, len(r.mods))
	for _, m := range r.mods {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Type < out[j].Type })
	return out
}

// Settings returns every module's settings, in type order.
func (r *Registry) Settings() []Setting {
	var out []Setting
	for _, m := range r.Modules() {
		out = append(out, m.Settings...)
	}
	return out
}

// Built is one module with its built TEE.
type Built struct {
	Module
	*TEE
}

// Build builds every module's TEE from d.
func (r *Registry) Build(d Deps) (map[string]Built, error) {
	out := make(map[string]Built, len(r.mods))
	for _, m := range r.Modules() {
		t, err := m.New(d)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.Type, err)
		}
		if t == nil || t.Verifier == nil {
			return nil, fmt.Errorf("%s: the module built no verifier", m.Type)
		}
		out[m.Type] = Built{Module: m, TEE: t}
	}
	return out, nil
}

// Preflight runs every module's start-time check.
func (r *Registry) Preflight(d Deps) error {
	var errs []error
	for _, m := range r.Modules() {
		if m.Preflight == nil {
			continue
		}
		if err := m.Preflight(d); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", m.Type, err))
		}
	}
	return errors.Join(errs...)
}
