package sample

import (
	"os"
	"testing"
)

func TestPasses(t *testing.T) { t.Log("quiet unless it fails") }

func TestNeedsEvidence(t *testing.T) {
	t.Log("looking for the evidence")
	t.Skip("evidence directory not found")
}

func TestAlsoNeedsEvidence(t *testing.T) { t.Skip("evidence directory not found") }

func TestNeedsHSM(t *testing.T) {
	t.Run("sub", func(t *testing.T) { t.Skipf("SoftHSM2 not available") })
}

func TestFails(t *testing.T) {
	if os.Getenv("SAMPLE_FAIL") == "" {
		return
	}
	t.Log("the failing test's own log")
	t.Fatal("it failed")
}
