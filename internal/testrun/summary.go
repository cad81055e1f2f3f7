package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action     string
	Package    string
	Test       string
	Output     string
	ImportPath string // build-output and build-fail events
}

// summary turns a test2json stream back into go test's terse output and
// collects the skipped tests with their reasons.
type summary struct {
	w       io.Writer
	verbose bool

	// output of each running test, printed only if it fails
	pending     map[string][]string
	skips       []skip
	failed      int // packages, for the exit status
	failedTests int
	passed      int
}

type skip struct {
	pkg, test, reason string
}

func newSummary(w io.Writer, verbose bool) *summary {
	return &summary{w: w, verbose: verbose, pending: map[string][]string{}}
}

func (s *summary) read(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			// Not an event (a build error printed as text): pass it on.
			fmt.Fprintf(s.w, "%s\n", line)
			continue
		}
		s.event(e)
	}
	return sc.Err()
}

func (s *summary) event(e event) {
	if e.Action == "build-output" {
		io.WriteString(s.w, e.Output)
		return
	}
	if e.Test == "" {
		// Package-level: the ok/FAIL line, a panic outside a test, a
		// failed build. go test prints these in every mode.
		// Under -json the binary runs verbose, so its closing PASS,
		// which go test swallows for a passing package, is dropped here.
		// Likewise "no tests to run", which go test turns into a mark
		// on the ok line (that line is in the stream too).
		if e.Action == "output" && (s.verbose || (e.Output != "PASS\n" && e.Output != "testing: warning: no tests to run\n")) {
			io.WriteString(s.w, e.Output)
		}
		if e.Action == "fail" {
			s.failed++
		}
		return
	}
	key := e.Package + "\x00" + e.Test
	switch e.Action {
	case "output":
		if s.verbose {
			io.WriteString(s.w, e.Output)
			return
		}
		s.pending[key] = append(s.pending[key], e.Output)
	case "pass":
		s.passed++
		delete(s.pending, key)
	case "skip":
		s.skips = append(s.skips, skip{pkg: e.Package, test: e.Test, reason: skipReason(s.pending[key])})
		delete(s.pending, key)
	case "fail":
		s.failedTests++
		for _, o := range s.pending[key] {
			// go test without -v shows a failed test's output but not
			// its === RUN/PAUSE/CONT framing.
			if !strings.HasPrefix(o, "=== ") {
				io.WriteString(s.w, o)
			}
		}
		delete(s.pending, key)
	}
}

// logPrefix is what testing puts before a t.Log or t.Skip line.
var logPrefix = regexp.MustCompile(`^\s+[\w.-]+\.go:\d+: `)

// skipReason is the text the test gave t.Skip: its output lines but the
// === and --- framing, without the file:line prefix.
func skipReason(lines []string) string {
	var parts []string
	for _, l := range lines {
		t := strings.TrimRight(l, "\n")
		trimmed := strings.TrimSpace(t)
		if trimmed == "" || strings.HasPrefix(trimmed, "=== ") || strings.HasPrefix(trimmed, "--- ") {
			continue
		}
		parts = append(parts, strings.TrimSpace(logPrefix.ReplaceAllString(t, "")))
	}
	if len(parts) == 0 {
		return "(no reason given)"
	}
	// The last message is the one passed to Skip; earlier ones are logs.
	return parts[len(parts)-1]
}

// report prints the count of skipped tests, grouped by reason, most
// frequent first.
func (s *summary) report() {
	if len(s.skips) == 0 {
		fmt.Fprintf(s.w, "\n%d tests passed, %d failed, none skipped.\n", s.passed, s.failedTests)
		return
	}
	byReason := map[string][]skip{}
	for _, k := range s.skips {
		byReason[k.reason] = append(byReason[k.reason], k)
	}
	reasons := make([]string, 0, len(byReason))
	for r := range byReason {
		reasons = append(reasons, r)
	}
	sort.Slice(reasons, func(i, j int) bool {
		if len(byReason[reasons[i]]) != len(byReason[reasons[j]]) {
			return len(byReason[reasons[i]]) > len(byReason[reasons[j]])
		}
		return reasons[i] < reasons[j]
	})
	fmt.Fprintf(s.w, "\n%d tests passed, %d failed, %d SKIPPED:\n", s.passed, s.failedTests, len(s.skips))
	for _, r := range reasons {
		ks := byReason[r]
		fmt.Fprintf(s.w, "  %3d  %s\n", len(ks), r)
		names := make([]string, 0, 4)
		for i, k := range ks {
			if i == 3 {
				names = append(names, fmt.Sprintf("and %d more", len(ks)-3))
				break
			}
			names = append(names, shortPkg(k.pkg)+"."+k.test)
		}
		fmt.Fprintf(s.w, "       (%s)\n", strings.Join(names, ", "))
	}
}

func shortPkg(p string) string {
	if i := strings.LastIndex(p, "/"); i >= 0 {
		return p[i+1:]
	}
	return p
}
