// Package keyops holds key material and performs every cryptographic
// operation of the Key Vault / Managed HSM keys API: create, import, the
// public JWK view, encrypt/decrypt, wrapkey/unwrapkey, sign/verify, and the
// RFC 3394 / RFC 5649 AES key wraps that secure key release also needs.
//
// The package does no I/O and knows nothing of HTTP, storage or policy: the
// API layer decodes a request, calls one function here, and maps the typed
// errors to responses (AlgorithmError and InputError are 400 BadParameter;
// DecryptError is a 400 whose text is deliberately fixed).
//
// # Threat model and the reasoning behind the rules
//
//   - Callers are authenticated but untrusted: any byte string they send —
//     a JWK to import, a ciphertext, an IV, a signature — may be hostile.
//     Inputs are checked for shape (lengths, encodings, fit between algorithm
//     and key) before any secret is touched, and those shape errors are
//     precise because shape is public.
//   - Everything that depends on a secret (GCM tag, CBC padding, RSA
//     padding, key-wrap integrity) fails with the one DecryptError, so no
//     response distinguishes "bad padding" from "bad MAC"; CBC unpadding is
//     done in constant time. RSA1_5 decryption is offered because Key Vault
//     offers it, but whether it succeeds is by nature a Bleichenbacher
//     oracle; keys that must resist it should not allow decrypt/unwrapKey
//     with RSA1_5 (a policy decision for the API layer).
//   - No error, and no String method, ever contains key material. Errors
//     name the JSON field at fault (for an imported key, "key.<member>") and
//     say what rule it broke.
//   - Imported keys are fully validated (RSA p·q = n and d consistent with
//     e, p, q; CRT values checked when given; EC points on the curve and d
//     matching them; AES key lengths) so that a bad key is refused at import
//     instead of producing wrong results — or fault attacks — later.
//   - The algorithm must fit the key: an algorithm for another key family,
//     another curve or another AES size is refused rather than silently
//     adapted, as Key Vault does.
//
// Wire forms follow azkeys v1.5.0: JWK byte fields are base64url without
// padding, ECDSA signatures are the fixed-size JOSE r||s concatenation, and
// AES-GCM returns its tag separately from the ciphertext.
package keyops
