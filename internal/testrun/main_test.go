package main

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestHasPackage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{nil, false},
		{[]string{"-count=1"}, false},
		{[]string{"-run", "TestX"}, false},
		{[]string{"-run", "TestX", "./internal/..."}, true},
		{[]string{"./..."}, true},
		{[]string{"-short", "./cmd/kura"}, true},
		{[]string{"-args", "x"}, false},
	} {
		if got := hasPackage(tc.args); got != tc.want {
			t.Errorf("hasPackage(%q) = %v, want %v", tc.args, got, tc.want)
		}
	}
}

func TestSkipReason(t *testing.T) {
	got := skipReason([]string{
		"=== RUN   TestX\n",
		"    x_test.go:12: a log line\n",
		"    x_test.go:13: evidence directory ../shared/evidence not found\n",
		"--- SKIP: TestX (0.00s)\n",
	})
	if want := "evidence directory ../shared/evidence not found"; got != want {
		t.Errorf("skipReason = %q, want %q", got, want)
	}
	if got := skipReason([]string{"=== RUN   TestY\n", "--- SKIP: TestY (0.00s)\n"}); got != "(no reason given)" {
		t.Errorf("skipReason without a message = %q", got)
	}
}

// TestSampleModule runs the real go test -json on a small module whose
// tests pass, skip and (when asked) fail, and checks what testrun prints.
func TestSampleModule(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go is not on PATH")
	}
	for _, fail := range []bool{false, true} {
		var out, errOut bytes.Buffer
		wd, _ := os.Getwd()
		if err := os.Chdir("testdata/sample"); err != nil {
			t.Fatal(err)
		}
		if fail {
			t.Setenv("SAMPLE_FAIL", "1")
		} else {
			t.Setenv("SAMPLE_FAIL", "")
		}
		code := run([]string{"-count=1"}, &out, &errOut)
		if err := os.Chdir(wd); err != nil {
			t.Fatal(err)
		}
		got := out.String()
		wantCode := 0
		if fail {
			wantCode = 1
		}
		if code != wantCode {
			t.Fatalf("fail=%v: exit %d, want %d; output:\n%s\nstderr:\n%s", fail, code, wantCode, got, errOut.String())
		}
		wants := []string{
			"3 SKIPPED:",
			"    2  evidence directory not found\n       (sample.TestNeedsEvidence, sample.TestAlsoNeedsEvidence)",
			"    1  SoftHSM2 not available\n       (sample.TestNeedsHSM/sub)",
		}
		if fail {
			wants = append(wants, "1 failed", "the failing test's own log", "it failed", "FAIL\texample.com/sample")
		} else {
			wants = append(wants, "ok  \texample.com/sample", "0 failed")
		}
		for _, w := range wants {
			if !strings.Contains(got, w) {
				t.Errorf("fail=%v: output lacks %q:\n%s", fail, w, got)
			}
		}
		for _, no := range []string{"quiet unless it fails", "looking for the evidence", "=== RUN", "\nPASS\n"} {
			if strings.Contains(got, no) {
				t.Errorf("fail=%v: output shows %q, which go test hides:\n%s", fail, no, got)
			}
		}
	}
}
