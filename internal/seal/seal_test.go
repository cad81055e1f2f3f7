package seal

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestSealOpen(t *testing.T) {
	dir := t.TempDir()
	unseal := bytes.Repeat([]byte{7}, 32)
	root, err := OpenSoftwareRoot(filepath.Join(dir, "root.sealed"), unseal)
	if err != nil {
		t.Fatal(err)
	}
	s := New(root)
	secret := []byte("private key bytes 0123456789")
	ct, err := s.Seal(secret, []byte("obj/1"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(ct, secret) {
		t.Fatal("ciphertext contains the plaintext")
	}
	pt, err := s.Open(ct, []byte("obj/1"))
	if err != nil || !bytes.Equal(pt, secret) {
		t.Fatalf("open: %v %q", err, pt)
	}
	// Another object's identity, any flipped byte, truncation: all fail.
	if _, err := s.Open(ct, []byte("obj/2")); err == nil {
		t.Error("opened under another object's identity")
	}
	for i := range ct {
		c := bytes.Clone(ct)
		c[i] ^= 0x80
		if _, err := s.Open(c, []byte("obj/1")); err == nil {
			t.Fatalf("opened with byte %d flipped", i)
		}
	}
	for _, n := range []int{0, 2, 3, 10, len(ct) - 1} {
		if _, err := s.Open(ct[:n], []byte("obj/1")); err == nil {
			t.Errorf("opened truncated to %d bytes", n)
		}
	}

	// The root survives a restart with the right unseal key and refuses a wrong one.
	root2, err := OpenSoftwareRoot(filepath.Join(dir, "root.sealed"), unseal)
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := New(root2).Open(ct, []byte("obj/1")); err != nil || !bytes.Equal(pt, secret) {
		t.Fatalf("after reopen: %v", err)
	}
	if _, err := OpenSoftwareRoot(filepath.Join(dir, "root.sealed"), bytes.Repeat([]byte{8}, 32)); err == nil {
		t.Error("wrong unseal key accepted")
	}
	if _, err := OpenSoftwareRoot(filepath.Join(dir, "root.sealed"), []byte("short")); err == nil {
		t.Error("short unseal key accepted")
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "root.sealed"))
	if len(raw) < 32+28 {
		t.Errorf("sealed root file is %d bytes", len(raw))
	}
	// A sealed (zero) root refuses to work.
	if _, err := New(&SoftwareRoot{}).Seal(secret, nil); err == nil {
		t.Error("a sealed root sealed")
	}
}

func TestKeyFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "k", "unseal.key")
	k1, err := LoadOrCreateKeyFile(f)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadOrCreateKeyFile(f)
	if err != nil || !bytes.Equal(k1, k2) || len(k1) != 32 {
		t.Fatalf("reload: %v", err)
	}
	st, _ := os.Stat(f)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v", st.Mode().Perm())
	}
	os.WriteFile(f, []byte("short"), 0o600)
	if _, err := LoadOrCreateKeyFile(f); err == nil {
		t.Error("short key file accepted")
	}
}

func TestWriteNew(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "seal")
	file := filepath.Join(dir, "root.sealed")
	if err := WriteNew(file, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := WriteNew(file, []byte("two")); err == nil {
		t.Error("an existing file was replaced")
	}
	b, err := os.ReadFile(file)
	if err != nil || string(b) != "one" {
		t.Errorf("content %q, %v", b, err)
	}
	for _, c := range []struct {
		path string
		mode os.FileMode
	}{{file, 0o600}, {dir, 0o700}} {
		st, err := os.Stat(c.path)
		if err != nil || st.Mode().Perm() != c.mode {
			t.Errorf("%s: %v %v, want %v", c.path, err, st.Mode().Perm(), c.mode)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
}

func TestWriteNewCleansUpAndTightens(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "seal")
	os.MkdirAll(dir, 0o755)
	stale := filepath.Join(dir, ".tmp-root.sealed-123")
	os.WriteFile(stale, []byte("x"), 0o600)
	if err := WriteNew(filepath.Join(dir, "root.sealed"), []byte("one")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); err == nil {
		t.Error("a stale temporary file was left")
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v", st.Mode().Perm())
	}
	if !noHardLinks(&os.LinkError{Op: "link", Err: syscall.EPERM}) || !noHardLinks(&os.LinkError{Op: "link", Err: syscall.ENOTSUP}) || noHardLinks(&os.LinkError{Op: "link", Err: syscall.EEXIST}) {
		t.Error("noHardLinks misclassifies")
	}
}
