// Package release parses and evaluates Azure Key Vault secure key release
// (SKR) policies, language version 1.0.0: the JSON document carried in a
// key's release_policy.data, which decides whether a verified attestation
// token may receive the key.
//
// A policy is an anyOf over authorities; each authority holds an allOf or
// anyOf of conditions; a condition is a claim condition or a nested
// allOf/anyOf:
//
//	{"version": "1.0.0",
//	 "anyOf": [{"authority": "https://sharedweu.weu.attest.azure.net",
//	            "allOf": [{"claim": "x-ms-isolation-tee.x-ms-attestation-type", "equals": "sevsnpvm"},
//	                      {"anyOf": [...]}]}]}
//
// # Threat model
//
// The policy is the only thing standing between an attestation token and an
// exportable key, and it is written by people, often by copying Microsoft's
// samples, some of which are wrong. So parsing refuses anything it cannot
// give exactly one meaning to, and evaluation fails closed: a condition that
// cannot be judged (missing claim, incomparable types) is not met, for
// notEquals as much as for equals. The claims are trusted input here: the
// caller has already verified the token's signature and that it came from
// issuer; this package only judges.
//
// # Parsing
//
// Parse is strict. It refuses, with a *ParseError naming the JSON path of the
// offending element: unknown members (names are case-sensitive, as in the
// grammar), duplicate members (JSON parsers disagree on which one wins, so a
// duplicate could mean different things to kura and to the policy's author),
// wrong JSON types, empty arrays, a claim condition with no operator or two,
// allOf and anyOf in one object, an authority entry without allOf/anyOf, a
// claim condition placed directly in an authority entry, and a top-level
// allOf. Microsoft's VM-ID sample policy has that top-level allOf; the
// grammar says the top level is always anyOf over authorities, and reading
// the sample's allOf as anyOf (or the reverse) would silently change its
// meaning, so it is refused with a message saying so.
//
// Accepted for compatibility with documented policies:
//   - a missing "version" means "1.0.0" (the grammar page's own example
//     omits it); any other version is refused;
//   - the legacy claim condition {"claim": c, "condition": op, "value": v},
//     still used in the current REST specification examples, means
//     {"claim": c, op: v}; op is one of the operator names below;
//   - the kura extension "x-kura-require-nonce": true at the top level (see
//     Policy.RequireNonce).
//
// Operator values: equals and notEquals take a string, number or boolean;
// less, lessOrEquals, greater and greaterOrEquals take a number (a string
// there is refused, because such a comparison could never be met); exists
// takes true or false. An authority is any non-empty string (the grammar
// page's example authority "my.attestation.com" is not a URL). A claim name
// is a non-empty dot path whose segments are all non-empty.
//
// Limits, so that parsing and evaluation cost stay small whatever the input:
// a policy is at most 64 KiB, has at most 1000 authority entries and
// conditions in all, and nests allOf/anyOf arrays at most 16 deep, counting
// the top-level anyOf as the first level and an authority's allOf/anyOf as
// the second.
//
// # Evaluation
//
// Evaluate judges the claims of a token from issuer. Only the authority
// entries whose authority equals issuer are evaluated; the others are marked
// skipped in the explanation. Both sides are compared case-sensitively after
// removing one trailing "/": Microsoft's default CVM policy writes
// "https://sharedeus.eus.attest.azure.net/" while MAA's iss has no slash. If
// no authority matches, the decision is a denial saying that the token's
// issuer is not an authority of this policy.
//
// allOf is met when all its conditions are; anyOf when at least one is.
// Every condition is evaluated, without short-circuit, so that the
// explanation shows the whole picture; the parse limits bound that work.
//
// Claim names walk nested JSON objects: "x-ms-isolation-tee.x-ms-attestation-type"
// is claims["x-ms-isolation-tee"]["x-ms-attestation-type"]. There is no array
// indexing and no escaping. A path that meets a missing member or a non-object
// before its last segment names a missing claim. A member whose value is
// JSON null is present (for exists) but comparable with nothing.
//
// Conditions on a missing claim are not met, except exists: "exists": true is
// met exactly when the claim is present, "exists": false exactly when it is
// absent.
//
// equals and notEquals. Key Vault is lenient in practice: the Azure SDK's live
// tests release a key under {"claim": "sdk-test", "equals": "true"} to a
// token whose sdk-test claim is the boolean true. kura therefore compares:
//   - values of the same JSON type exactly: strings byte for byte
//     (case-sensitive), booleans as booleans, numbers by exact decimal value
//     (1, 1.0 and 1e0 are equal; 9007199254740993 and 9007199254740992 are
//     not, although they are the same float64);
//   - a string with a boolean or number by comparing the string with the
//     canonical text of the other value: "true" or "false", or the number's
//     shortest decimal form (ECMAScript Number-to-string style: 3, 0.5,
//     1e+21). The string is not parsed, so "3" equals 3 but "3.0" and "03"
//     do not, and "True" does not equal true.
//
// Options.StrictTypes (kura's release_policy_strict_types) turns this
// leniency off: values of different JSON types are then never equal. Either
// way a node compared as text says so in its Note, and Decision.Coerced
// lists the conditions met only through it.
//
// A boolean and a number, and any comparison involving null, an object or an
// array, are incomparable: equals and notEquals are then both not met, so a
// guard such as {"claim": "x-ms-sevsnpvm-is-debuggable", "notEquals": true}
// cannot be passed by a claim of an unexpected type. notEquals is thus met
// only when the claim is present, comparable and different.
//
// less, lessOrEquals, greater and greaterOrEquals are met only when the claim
// is a number and the comparison holds. A numeric-looking string claim is not
// parsed: nothing documents that Key Vault does so, MAA emits SVNs as JSON
// numbers, and guessing (is "0x10" sixteen? is "1e3" a thousand?) would open
// a second, lenient path around a security comparison.
//
// Claim numbers may be json.Number, float64 or Go integers. A float64 is
// judged by its shortest decimal form, which recovers the JSON text it was
// decoded from for any number of up to 15 significant digits. NaN and
// infinities are not numbers.
//
// # Explanations
//
// A Decision carries a tree of *Node mirroring the policy, with each
// condition's expected and actual values and whether it was met; it marshals
// to JSON, and Node.String summarises the first failing path, e.g.
//
//	anyOf[0] (authority https://a): allOf[1]: claim x-ms-sevsnpvm-is-debuggable equals false, actual true
//
// Values are written as JSON (strings quoted, so the string "true" and the
// boolean true can be told apart); long strings are shortened and objects and
// arrays summarised, so that an explanation stays small whatever the token
// holds. Claims are attestation evidence, not secrets, and the requester
// already holds the token they come from.
//
// A Policy is immutable after Parse and safe for concurrent use.
package release
