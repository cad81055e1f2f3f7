package keys

import (
	"fmt"
	"strconv"
	"time"
)

// Duration is an ISO 8601 duration as Key Vault rotation policies use them
// ("P90D", "P2Y", "P1Y2M10DT2H30M"). Calendar parts are kept apart from clock
// parts so that adding one is calendar-correct.
type Duration struct {
	Years, Months, Days int
	Clock               time.Duration
	text                string
}

// ParseDuration parses P[nY][nM][nW][nD][T[nH][nM][nS]].
func ParseDuration(s string) (Duration, error) {
	d := Duration{text: s}
	if len(s) < 2 || s[0] != 'P' {
		return d, fmt.Errorf("%q is not an ISO 8601 duration (it must start with P, e.g. P90D)", s)
	}
	inTime, any := false, false
	// Each designator at most once and in the order of the grammar, so that
	// "PT99999H99999H…" cannot sum past time.Duration's range.
	last := 0
	rank := map[byte]int{'Y': 1, 'M': 2, 'W': 3, 'D': 4}
	timeRank := map[byte]int{'H': 5, 'M': 6, 'S': 7}
	num := ""
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			num += string(c)
			continue
		case c == 'T':
			if inTime || num != "" {
				return d, fmt.Errorf("duration %q: misplaced T at %d", s, i)
			}
			inTime = true
			continue
		}
		if num == "" {
			return d, fmt.Errorf("duration %q: %c at %d has no number", s, c, i)
		}
		n, err := strconv.Atoi(num)
		if err != nil || n > 100000 {
			return d, fmt.Errorf("duration %q: number %s out of range", s, num)
		}
		r, ok := rank[c]
		if inTime {
			r, ok = timeRank[c]
		}
		if !ok {
			return d, fmt.Errorf("duration %q: unexpected %c at %d", s, c, i)
		}
		if r <= last {
			return d, fmt.Errorf("duration %q: %c at %d is repeated or out of order (P[nY][nM][nW][nD][T[nH][nM][nS]])", s, c, i)
		}
		last = r
		num, any = "", true
		switch {
		case !inTime && c == 'Y':
			d.Years += n
		case !inTime && c == 'M':
			d.Months += n
		case !inTime && c == 'W':
			d.Days += 7 * n
		case !inTime && c == 'D':
			d.Days += n
		case inTime && c == 'H':
			d.Clock += time.Duration(n) * time.Hour
		case inTime && c == 'M':
			d.Clock += time.Duration(n) * time.Minute
		case inTime && c == 'S':
			d.Clock += time.Duration(n) * time.Second
		default:
			return d, fmt.Errorf("duration %q: unexpected %c at %d", s, c, i)
		}
	}
	if num != "" || !any || (inTime && last < 5) {
		return d, fmt.Errorf("duration %q is incomplete", s)
	}
	return d, nil
}

// After returns t plus the duration.
func (d Duration) After(t time.Time) time.Time {
	return t.AddDate(d.Years, d.Months, d.Days).Add(d.Clock)
}

// Before returns t minus the duration.
func (d Duration) Before(t time.Time) time.Time {
	return t.AddDate(-d.Years, -d.Months, -d.Days).Add(-d.Clock)
}

// String returns the text it was parsed from.
func (d Duration) String() string { return d.text }
