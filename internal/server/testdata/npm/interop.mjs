// Drives a kura instance with Microsoft's @azure/attestation client, with
// the client's token validation on (signature against /certs, exp, nbf and
// the issuer), and prints one JSON object of what each call returned or the
// error it threw. maa_npm_test.go runs it and judges the results.
//
// Environment: KURA_ENDPOINT (https URL), KURA_ISSUER (the expected iss),
// KURA_ADMIN_TOKEN, KURA_MODE ("default" or "isolated"), KURA_KEY1_PEM and
// KURA_CERT1_PEM (an RSA policy signer; in isolated mode the configured
// policy management certificate), KURA_KEY2_PEM and KURA_CERT2_PEM (another
// signer; in isolated mode the certificate added and removed), KURA_POLICY
// (the policy text to set). The dev CA comes in through NODE_EXTRA_CA_CERTS.
import { createHash } from "node:crypto";
import {
  AttestationClient,
  AttestationAdministrationClient,
  createAttestationPolicyToken,
} from "@azure/attestation";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const endpoint = env("KURA_ENDPOINT");
const mode = env("KURA_MODE");
const key1 = env("KURA_KEY1_PEM"), cert1 = env("KURA_CERT1_PEM");
const key2 = env("KURA_KEY2_PEM"), cert2 = env("KURA_CERT2_PEM");
const policy = env("KURA_POLICY");
const type = "SevSnpVm";

// Every check the client has, on; the issuer too (off by default).
const validationOptions = {
  validateToken: true,
  validateExpirationTime: true,
  validateNotBeforeTime: true,
  validateIssuer: true,
  expectedIssuer: env("KURA_ISSUER"),
  timeValidationSlack: 0,
};
// The administrator bearer token, as a TokenCredential.
const credential = {
  getToken: async () => ({ token: env("KURA_ADMIN_TOKEN"), expiresOnTimestamp: Date.now() + 3600 * 1000 }),
};
const client = new AttestationClient(endpoint, { validationOptions });
const admin = new AttestationAdministrationClient(endpoint, credential, { validationOptions });

const out = {};
const hex = (b) => Buffer.from(b).toString("hex");
const sha256 = (s) => createHash("sha256").update(s).digest("hex");
const der = (pem) => pem.replace(/-----[^-]+-----|\s/g, "");

async function step(name, f) {
  try {
    out[name] = { ok: true, value: await f() };
  } catch (e) {
    out[name] = { ok: false, error: String(e && e.message ? e.message : e), status: e && e.statusCode };
  }
}

// The PolicyResult of setPolicy/resetPolicy, with the hash the client
// would compare against what it sent. sent is the same JWS the client sent
// for alg none and RS256 (both deterministic); an ES256 signature is not
// (sent is null), so only the hash's length is checked then.
function policyResult(r, sent) {
  const v = r.body;
  return {
    resolution: v.policyResolution,
    tokenHashMatches: sent === null ? v.policyTokenHash.length === 32 : hex(v.policyTokenHash) === sha256(sent),
    signer: v.policySigner ? v.policySigner.certificates.map(der) : null,
    issuer: r.token.issuer,
  };
}

await step("getOpenIdMetadata", async () => {
  const m = await client.getOpenIdMetadata();
  return { issuer: m.issuer, jwks_uri: m["jwks_uri"] };
});
await step("getAttestationSigners", async () => {
  const signers = await client.getAttestationSigners();
  return signers.map((s) => ({ keyId: s.keyId, certificates: s.certificates.length }));
});
await step("getPolicy", async () => {
  const r = await admin.getPolicy(type);
  return { length: r.body.length, issuer: r.token.issuer };
});

if (mode === "default") {
  await step("setPolicyUnsigned", async () => {
    const r = await admin.setPolicy(type, policy);
    return policyResult(r, createAttestationPolicyToken(policy).serialize());
  });
  await step("getPolicyAfterUnsigned", async () => (await admin.getPolicy(type)).body === policy);
  await step("setPolicySigned", async () => {
    const r = await admin.setPolicy(type, policy, { privateKey: key1, certificate: cert1 });
    return policyResult(r, createAttestationPolicyToken(policy, key1, cert1).serialize());
  });
  await step("resetPolicy", async () => {
    const r = await admin.resetPolicy(type);
    return { resolution: r.body.policyResolution };
  });
  await step("getPolicyManagementCertificates", async () => {
    const r = await admin.getPolicyManagementCertificates();
    return r.body.map((s) => s.certificates.map(der));
  });
  await step("addPolicyManagementCertificate", async () => {
    const r = await admin.addPolicyManagementCertificate(cert2, key1, cert1);
    return r.body;
  });
} else {
  await step("getPolicyManagementCertificates", async () => {
    const r = await admin.getPolicyManagementCertificates();
    return r.body.map((s) => s.certificates.map(der));
  });
  await step("setPolicyUnsigned", async () => {
    const r = await admin.setPolicy(type, policy);
    return policyResult(r, createAttestationPolicyToken(policy).serialize());
  });
  await step("setPolicySigned", async () => {
    const r = await admin.setPolicy(type, policy, { privateKey: key1, certificate: cert1 });
    return policyResult(r, createAttestationPolicyToken(policy, key1, cert1).serialize());
  });
  await step("setPolicyByNonMember", async () => {
    const r = await admin.setPolicy(type, policy, { privateKey: key2, certificate: cert2 });
    return policyResult(r, null);
  });
  await step("addPolicyManagementCertificate", async () => {
    const r = await admin.addPolicyManagementCertificate(cert2, key1, cert1);
    return { thumbprint: r.body.certificateThumbprint, result: r.body.certificateResolution };
  });
  await step("getPolicyManagementCertificatesAfterAdd", async () => {
    const r = await admin.getPolicyManagementCertificates();
    return r.body.map((s) => s.certificates.map(der));
  });
  await step("setPolicySignedByAdded", async () => {
    const r = await admin.setPolicy(type, policy, { privateKey: key2, certificate: cert2 });
    return policyResult(r, null);
  });
  await step("removePolicyManagementCertificate", async () => {
    const r = await admin.removePolicyManagementCertificate(cert2, key1, cert1);
    return { thumbprint: r.body.certificateThumbprint, result: r.body.certificateResolution };
  });
  await step("removeLastPolicyManagementCertificate", async () => {
    const r = await admin.removePolicyManagementCertificate(cert1, key1, cert1);
    return r.body;
  });
  await step("getPolicyManagementCertificatesAfterRemove", async () => {
    const r = await admin.getPolicyManagementCertificates();
    return r.body.map((s) => s.certificates.map(der));
  });
  await step("resetPolicy", async () => {
    const r = await admin.resetPolicy(type, { privateKey: key1, certificate: cert1 });
    return { resolution: r.body.policyResolution };
  });
}

process.stdout.write(JSON.stringify(out) + "\n");
