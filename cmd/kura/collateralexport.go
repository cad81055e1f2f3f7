package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/kura-project/kura/internal/app"
	"github.com/kura-project/kura/internal/attest/intel"
	"github.com/kura-project/kura/internal/config"
)

// collateralExport is `kura collateral export --out DIR`: every collateral
// item of the local store, once each, as the files `kura collateral
// import` takes (AMD certificates and CRLs as DER, Intel bundles as
// dcap-qvl JSON), for an air-gapped site to import. Nothing in it is
// trusted for being exported: the importing kura verifies every file.
func collateralExport(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("collateral export", flag.ContinueOnError)
	data, resolveData := dataFlag(fs, "the data directory holding the store")
	storeDSN := storeFlag(fs)
	out := fs.String("out", "", "directory to write the files to (created; must be empty if it exists)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() != 0 {
		return &exitError{2, errors.New("collateral export needs --out DIR and no arguments")}
	}
	if err := resolveData(); err != nil {
		return err
	}
	if err := resolveStore(fs, storeDSN); err != nil {
		return err
	}
	if *storeDSN == "" {
		if _, err := os.Stat(*data); err != nil {
			return &exitError{1, fmt.Errorf("data directory %s: %w", *data, err)}
		}
	}
	if ents, err := os.ReadDir(*out); err == nil && len(ents) > 0 {
		return &exitError{1, fmt.Errorf("%s is not empty: export into a new directory", *out)}
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	cfg := config.Default()
	cfg.DataDir, cfg.Store = *data, *storeDSN
	st, err := app.OpenStore(cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	items, err := st.AllCollateral(ctx)
	if err != nil {
		return err
	}
	seen := map[[32]byte]bool{}
	n := 0
	for _, it := range items {
		d := sha256.Sum256(it.DER)
		if seen[d] { // Intel bundles are filed under two keys
			continue
		}
		seen[d] = true
		ext := ".der"
		if it.Kind == intel.Kind {
			ext = ".json"
		}
		n++
		name := fmt.Sprintf("%03d-%s-%s%s", n, strings.ReplaceAll(it.Kind, "/", "_"), hex.EncodeToString(d[:4]), ext)
		if err := os.WriteFile(filepath.Join(*out, name), it.DER, 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "wrote %d collateral file(s) to %s; import them with `kura collateral import %s`\n", n, *out, filepath.Join(*out, "*"))
	return nil
}
