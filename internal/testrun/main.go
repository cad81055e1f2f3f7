// Command testrun is the README's test command: it runs `go test -json`
// with the arguments given (./... when none) and prints what `go test`
// prints, then how many tests skipped and why.
//
// It exists because `go test ./...` discards the output of every package
// that passes, so a test that skips for lack of ../shared/evidence,
// SoftHSM2 or Node says so only under -v; a reader of a green run would not
// know that the tests on real evidence did not run.
package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	goArgs := append([]string{"test", "-json"}, args...)
	if !hasPackage(args) {
		goArgs = append(goArgs, "./...")
	}
	cmd := exec.Command("go", goArgs...)
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintf(stderr, "testrun: %v\n", err)
		return 2
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(stderr, "testrun: go test: %v\n", err)
		return 2
	}
	s := newSummary(stdout, verbose(args))
	if err := s.read(out); err != nil {
		fmt.Fprintf(stderr, "testrun: reading go test -json: %v\n", err)
	}
	waitErr := cmd.Wait()
	s.report()
	if waitErr != nil {
		if ee, ok := waitErr.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		fmt.Fprintf(stderr, "testrun: go test: %v\n", waitErr)
		return 2
	}
	if s.failed > 0 {
		return 1
	}
	return 0
}

// hasPackage reports whether args name a package or pattern, i.e. hold an
// argument that is not a flag or a flag's value. Flags that take a value
// are written -flag=value in this repository's scripts; a bare value after
// a flag is taken for a package, as go test would when it is not a flag's.
func hasPackage(args []string) bool {
	valueFlags := map[string]bool{"-run": true, "-bench": true, "-count": true, "-timeout": true,
		"-skip": true, "-tags": true, "-parallel": true, "-p": true, "-cpu": true, "-benchtime": true,
		"-fuzz": true, "-fuzztime": true, "-coverprofile": true, "-o": true, "-exec": true}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "-args" {
			return false
		}
		if strings.HasPrefix(a, "-") {
			name := strings.TrimPrefix(a, "-")
			name = "-" + strings.TrimPrefix(name, "-")
			if !strings.Contains(name, "=") && valueFlags[name] {
				i++
			}
			continue
		}
		return true
	}
	return false
}

func verbose(args []string) bool {
	for _, a := range args {
		if a == "-args" {
			return false
		}
		if a == "-v" || a == "--v" || a == "-v=true" || a == "-test.v" {
			return true
		}
	}
	return false
}
