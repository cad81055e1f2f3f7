// Package maa parses and evaluates attestation policies written in the
// Microsoft Azure Attestation (MAA) policy language, versions 1.0, 1.1 and 1.2.
//
// A policy is `version=MAJOR.MINOR;` followed by up to three sections, each
// written `name { rules };`:
//
//	configurationrules  (1.1+) issueproperty(): settings for the verifier
//	authorizationrules  permit(), deny(), add(): decides the attestation
//	issuancerules       add(), issue(), issueproperty(): shapes the token
//
// A rule is `[condition {&& condition}] => action;`. A condition
// `[!] [ident:] [prop OP expr {, prop OP expr}]` holds when at least one claim
// of the current incoming set satisfies every property comparison; with `!`
// (1.2 only) it holds when none does. Microsoft publishes no formal grammar;
// the one implemented here is the reconstruction in the kura MAA reference,
// checked against every Microsoft sample policy.
//
// # Evaluation
//
// Sections run in a fixed order, whatever their order in the text (which is
// therefore free): configurationrules, then authorizationrules, then, only
// after a permit, issuancerules. configurationrules may have conditions; they
// see the incoming claims. Within a section rules run in text order. In
// authorizationrules the first rule whose conditions hold and whose action is
// permit() or deny() decides; add() rules extend the incoming set and
// evaluation continues. If no rule decides, or the policy has no
// authorizationrules section at all, the result is deny: MAA's documentation
// lists the section as part of every policy without saying what its absence
// means, and an attestation service must fail closed.
//
// Identifiers bind the matched claim. As in the ADFS claim-rule language MAA
// derives from, a rule whose conditions bind identifiers runs its action once
// for every combination of matching claims; permit() and deny() need only
// one. A rule matches against the incoming set as it was when the rule
// started, so a rule never sees the claims it adds itself, while later rules
// do. A "!" condition binds nothing (it matches no claim) but may use
// identifiers bound before it. issue() adds to both the outgoing and the
// incoming set, add() to the incoming set only. Claims created by a policy
// carry the issuer "AttestationPolicy" and keep the type of their value (100
// is an Integer, true a Boolean, "x" a String); issue(claim=c) copies c's
// type and value. The type= of a created claim must be a string literal, so
// that evidence never chooses which claim it becomes.
//
// # Values and comparisons
//
// Claim values are String, Integer (int64) or Boolean; kura adds Json for
// structured values such as x-ms-runtime, so that re-issuing them keeps their
// shape. A whole JSON number in a claim is an Integer, because that is what
// evidence decoded from JSON means by it. Integers support == != < <= > >=;
// the other types only == and !=. A comparison between different types is
// false for every operator, != included: the string "false" is neither equal
// nor unequal to the Boolean false, so a condition written for the wrong type
// matches nothing instead of matching everything. Where the parser can see
// that a comparison can never hold (an ordering operator against a string or
// Boolean literal, or a claim type compared with an integer) it rejects the
// policy, because such a rule is certainly a mistake and, in a deny() rule, a
// silent hole. A single "=" in a condition is read as "==": Microsoft's own
// 1.2 secure-boot sample writes `issuer="AttestationPolicy"`.
//
// # Functions (1.2)
//
// JmesPath(json, query) returns the JSON text of the query result; json is
// JSON text or a Json claim value. JsonToClaimValue(json) turns JSON into an
// Integer, Boolean or String; an array of those becomes a set (duplicates
// removed), which add() and issue() expand into one claim per element; null
// yields no value and so no claim; an object is an error. IsSubsetOf(set,
// set), AppendString(s1, s2), NegateBool(b) and ContainsOnlyValue(set, v)
// complete the list; ContainsOnlyValue is false for an empty set, so that
// "all digests equal X" cannot pass vacuously. A JmesPath query must be a
// string literal: it is compiled when the policy is parsed, and go-jmespath
// cannot bound the cost of a query, so kura never runs one taken from a claim
// the attester controls.
//
// # Strictness and limits
//
// Parsing is strict and every syntax error is a *ParseError with a 1-based
// line and column (columns count Unicode code points). Keywords (section,
// action, property and function names, true, false) are case-insensitive, as
// the custom-TCB sample's `Issuancerules` requires; identifiers are
// case-sensitive and may not be an action name, true or false. The ";" after
// a section's "}" is required, as in every sample. Policies are limited to
// 256 KiB and function calls to 32 levels of nesting. Evaluation is bounded
// to 10 000 steps (condition-combination nodes plus function calls), 1 000
// claims in the incoming set, 1 000 properties, 64 KiB per AppendString
// result and 4 MiB of JSON per JmesPath result; exceeding a bound is a
// *LimitError, never a hang. Any error from Evaluate means deny.
//
// A Policy is immutable after Parse and safe for concurrent use.
package maa
