// Attests SGX quotes and an Open Enclave report against kura with
// Microsoft's @azure/attestation client (attestSgxEnclave,
// attestOpenEnclave), the client's token validation on: the signature
// against kura's /certs and the issuer always, exp and nbf unless
// KURA_RECORDED_TIME=1 (recorded evidence, attested at its collateral's
// time, gets tokens issued then). Prints one JSON object of what each
// call returned or the error it threw; maa_sgx_npm_test.go judges it.
//
// Environment: KURA_ENDPOINT, KURA_ISSUER, KURA_QUOTE (base64 SGX quote),
// optional KURA_RUNTIME_JSON (the runtime JSON the quote binds),
// KURA_QUOTE_BIN and KURA_RUNTIME_BIN (a quote binding binary runtime
// data, base64), KURA_OE_REPORT (base64 Open Enclave report).
import { AttestationClient } from "@azure/attestation";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const recorded = process.env.KURA_RECORDED_TIME === "1";
const validationOptions = {
  validateToken: true,
  validateExpirationTime: !recorded,
  validateNotBeforeTime: !recorded,
  validateIssuer: true,
  expectedIssuer: env("KURA_ISSUER"),
  timeValidationSlack: 0,
};
const client = new AttestationClient(env("KURA_ENDPOINT"), { validationOptions });
const b64 = (s) => new Uint8Array(Buffer.from(s, "base64"));
const hex = (b) => (b ? Buffer.from(b).toString("hex") : null);
const out = {};

async function step(name, f) {
  try {
    out[name] = { ok: true, value: await f() };
  } catch (e) {
    out[name] = { ok: false, error: String(e && e.message ? e.message : e), status: e && e.statusCode };
  }
}

// What the client made of the token: the result's typed fields.
function result(r) {
  const v = r.body;
  return {
    issuer: v.issuer, verifierType: v.verifierType, mrEnclave: v.mrEnclave, mrSigner: v.mrSigner,
    isDebuggable: v.isDebuggable, productId: v.productId, svn: v.svn, enclaveHeldData: hex(v.enclaveHeldData),
    runTimeClaims: v.runTimeClaims ?? null, policyHash: hex(v.policyHash), version: v.version,
    collateral: v.sgxCollateral ?? null, tokenIssuer: r.token.issuer,
  };
}

await step("attestSgxEnclave", async () => {
  const opts = process.env.KURA_RUNTIME_JSON ? { runTimeJson: new TextEncoder().encode(process.env.KURA_RUNTIME_JSON) } : {};
  return result(await client.attestSgxEnclave(b64(env("KURA_QUOTE")), opts));
});
if (process.env.KURA_QUOTE_BIN) {
  await step("attestSgxEnclaveBinary", async () =>
    result(await client.attestSgxEnclave(b64(env("KURA_QUOTE_BIN")), { runTimeData: b64(env("KURA_RUNTIME_BIN")) })));
  await step("attestSgxEnclaveUnbound", async () =>
    result(await client.attestSgxEnclave(b64(env("KURA_QUOTE_BIN")), { runTimeData: new Uint8Array([1, 2, 3]) })));
}
if (process.env.KURA_OE_REPORT) {
  await step("attestOpenEnclave", async () => {
    const opts = process.env.KURA_RUNTIME_JSON ? { runTimeJson: new TextEncoder().encode(process.env.KURA_RUNTIME_JSON) } : {};
    return result(await client.attestOpenEnclave(b64(env("KURA_OE_REPORT")), opts));
  });
}
process.stdout.write(JSON.stringify(out) + "\n");
