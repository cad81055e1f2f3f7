package keyops

// JWK is a JSON Web Key's members as bytes: the domain's form of a key
// given or shown. Its JSON encodings live with their users: api/keyvault
// has Key Vault's wire form, internal/keys the stored form.
type JWK struct {
	Kid    string
	Kty    string
	KeyOps []string
	N, E   []byte
	D      []byte
	DP, DQ []byte
	QI     []byte
	P, Q   []byte
	K      []byte
	Crv    string
	X, Y   []byte
	T      []byte // key_hsm: a key wrapped for an HSM (BYOK import, release)
}
