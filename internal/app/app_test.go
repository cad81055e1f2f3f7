package app

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLooseSecretFilesWarned: a secret file other users can read is named in
// a warning at start (without its content); a 0600 one is not.
func TestLooseSecretFilesWarned(t *testing.T) {
	dir := t.TempDir()
	loose := filepath.Join(dir, "admin-token")
	tight := filepath.Join(dir, "unseal.key")
	os.WriteFile(loose, []byte("admin-token-0123456789abcdef"), 0o644)
	os.Chmod(loose, 0o644)
	os.WriteFile(tight, bytes.Repeat([]byte{1}, 32), 0o600)
	var buf bytes.Buffer
	warnLooseSecretFiles(slog.New(slog.NewTextHandler(&buf, nil)), loose, tight, "", filepath.Join(dir, "missing"))
	out := buf.String()
	if !strings.Contains(out, loose) || !strings.Contains(out, "0644") {
		t.Errorf("no warning for a 0644 secret file: %q", out)
	}
	if strings.Contains(out, tight) || strings.Contains(out, "admin-token-0123") {
		t.Errorf("warning names a 0600 file or shows a secret: %q", out)
	}
}
