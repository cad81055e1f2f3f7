package release

import "encoding/json"

// Matched is what a granted release was granted on: the claim conditions
// the decision met, depth first in the policy's order, only below groups
// that were met themselves (a condition met in a branch that failed did
// not grant), as a JSON array of [claim, operator, actual] with actual as
// the explanation writes it. Its SHA-256 goes on the release's ledger
// record. A denied decision matched nothing.
func (d *Decision) Matched() []byte {
	out := [][3]string{}
	if d.Allowed {
		var walk func(n *Node)
		walk = func(n *Node) {
			if n == nil || !n.Met || n.Skipped {
				return
			}
			if n.Kind == KindClaim {
				out = append(out, [3]string{n.Claim, n.Operator, n.Actual})
			}
			for _, c := range n.Children {
				walk(c)
			}
		}
		walk(d.Explanation)
	}
	b, _ := json.Marshal(out) // strings only: cannot fail
	return b
}
