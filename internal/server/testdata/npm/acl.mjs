// Drives a kura instance with Microsoft's @azure-rest/confidential-ledger
// client (1.0.0, API 2022-05-13) and prints one JSON object of what each
// call returned. acl_npm_test.go runs it and judges the results (it
// verifies the receipts with ACL's published algorithm).
//
// Two phases, as an ACL client works: KURA_PHASE=identity fetches the
// ledger's identity (getLedgerIdentity; the dev CA trusted through
// NODE_EXTRA_CA_CERTS, as a public CA would be); KURA_PHASE=ledger then
// talks to the ledger with only that certificate pinned (no extra CA).
//
// Environment: KURA_ENDPOINT, KURA_ADMIN_TOKEN, KURA_USER_ID and
// KURA_USER_TOKEN (a principal that starts with no role), KURA_IDENTITY
// (the PEM of the identity phase).
import lib from "@azure-rest/confidential-ledger";

// The package is CommonJS with exports.default: ESM sees the exports object.
const ConfidentialLedger = typeof lib === "function" ? lib : lib.default;
const { getLedgerIdentity, isUnexpected, paginate } = lib;

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const endpoint = env("KURA_ENDPOINT");
const out = {};
const cred = (token) => ({ getToken: async () => ({ token, expiresOnTimestamp: Date.now() + 3600 * 1000 }) });

async function step(name, f) {
  try {
    out[name] = { ok: true, value: await f() };
  } catch (e) {
    out[name] = { ok: false, error: String(e && e.message ? e.message : e), status: e && e.statusCode };
  }
}

// call returns the body of a 2xx answer, or throws with the status. (The
// client's isUnexpected matches parametrised paths without their method, so
// in 1.0.0 it calls PATCH /app/users/{id}'s 200 unexpected: DELETE's 204 is
// listed first. It is used below only where it is right.)
async function call(p) {
  const r = await p;
  const status = Number(r.status);
  if (status < 200 || status > 299) {
    const err = new Error(`${r.status} ${JSON.stringify(r.body)}`);
    err.statusCode = Number(r.status);
    throw err;
  }
  return { status: Number(r.status), body: r.body, txid: r.headers["x-ms-ccf-transaction-id"] };
}

if (env("KURA_PHASE") === "identity") {
  await step("getLedgerIdentity", () => getLedgerIdentity("kura-interop", endpoint));
} else {
  const identity = env("KURA_IDENTITY");
  const admin = ConfidentialLedger(endpoint, identity, cred(env("KURA_ADMIN_TOKEN")));
  const user = ConfidentialLedger(endpoint, identity, cred(env("KURA_USER_TOKEN")));
  const uid = env("KURA_USER_ID");

  await step("writeWithoutRole", () => call(user.path("/app/transactions").post({ body: { contents: "x" } })));
  await step("createUser", () =>
    call(admin.path("/app/users/{userId}", uid).patch({ body: { assignedRole: "Contributor" }, contentType: "application/merge-patch+json" })));
  await step("getUser", () => call(admin.path("/app/users/{userId}", uid).get()));

  // Writes: three to the default collection, 230 to "interop" (three pages).
  const ids = [];
  await step("writeDefault", async () => {
    for (let i = 0; i < 3; i++) {
      const r = await call(user.path("/app/transactions").post({ body: { contents: `default ${i}` } }));
      ids.push(r.txid);
    }
    return ids;
  });
  const interop = [];
  await step("writeInterop", async () => {
    let last;
    for (let i = 0; i < 230; i++) {
      last = await call(user.path("/app/transactions").post({ body: { contents: `interop ${i}` }, queryParameters: { collectionId: "interop" } }));
      interop.push(last.txid);
    }
    return { count: interop.length, body: last.body, first: interop[0], last: interop[interop.length - 1] };
  });
  await step("writeAudit", () =>
    call(user.path("/app/transactions").post({ body: { contents: "forged" }, queryParameters: { collectionId: "kura-audit" } })));
  await step("userPatchesUsers", () =>
    call(user.path("/app/users/{userId}", uid).patch({ body: { assignedRole: "Administrator" }, contentType: "application/merge-patch+json" })));

  await step("isUnexpected", async () => isUnexpected(await user.path("/app/transactions/{transactionId}", ids[0]).get()));
  await step("getEntry", () => call(user.path("/app/transactions/{transactionId}", ids[1]).get()));
  await step("getEntryInterop", () =>
    call(user.path("/app/transactions/{transactionId}", interop[7]).get({ queryParameters: { collectionId: "interop" } })));
  await step("current", () => call(user.path("/app/transactions/current").get({ queryParameters: { collectionId: "interop" } })));
  await step("status", async () => {
    const seen = [];
    for (let i = 0; i < 50; i++) {
      const r = await call(user.path("/app/transactions/{transactionId}/status", interop[229]).get());
      seen.push(r.body.state);
      if (r.body.state === "Committed") return { seen, body: r.body };
      await new Promise((res) => setTimeout(res, 100));
    }
    return { seen };
  });
  await step("receipts", async () => {
    const rs = {};
    for (const id of [ids[0], ids[2], interop[0], interop[100], interop[229]]) {
      rs[id] = (await call(user.path("/app/transactions/{transactionId}/receipt", id).get())).body;
    }
    return rs;
  });
  await step("listDefault", async () => {
    const first = await call(user.path("/app/transactions").get());
    const all = [];
    for await (const e of paginate(user, await user.path("/app/transactions").get())) all.push(e);
    return { state: first.body.state, all };
  });
  await step("listInterop", async () => {
    const pages = [];
    let r = await user.path("/app/transactions").get({ queryParameters: { collectionId: "interop" } });
    const items = [];
    for await (const e of paginate(user, r)) items.push(e.transactionId);
    pages.push(r.body.nextLink || "");
    return { count: items.length, first: items[0], last: items[items.length - 1], firstNextLink: pages[0] };
  });
  await step("listRange", async () => {
    const r = await user.path("/app/transactions").get({
      queryParameters: { collectionId: "interop", fromTransactionId: interop[10], toTransactionId: interop[14] },
    });
    const items = [];
    for await (const e of paginate(user, r)) items.push(e.contents);
    return items;
  });
  await step("collections", async () => {
    const items = [];
    for await (const c of paginate(user, await user.path("/app/collections").get())) items.push(c.collectionId);
    return items;
  });
  await step("collectionsAdmin", async () => {
    const items = [];
    for await (const c of paginate(admin, await admin.path("/app/collections").get())) items.push(c.collectionId);
    return items;
  });
  await step("readAuditAsUser", () => call(user.path("/app/transactions").get({ queryParameters: { collectionId: "kura-audit" } })));
  await step("receiptOfAuditAsUser", () => call(user.path("/app/transactions/{transactionId}/receipt", "1.1").get()));
  await step("readAuditAsAdmin", () => call(admin.path("/app/transactions/{transactionId}", "1.1").get()));
  await step("makeReader", () =>
    call(admin.path("/app/users/{userId}", uid).patch({ body: { assignedRole: "Reader" }, contentType: "application/merge-patch+json" })));
  await step("readerWrites", () => call(user.path("/app/transactions").post({ body: { contents: "no" } })));
  await step("readerReads", () => call(user.path("/app/transactions/{transactionId}", ids[0]).get()));
  await step("deleteUser", () => call(admin.path("/app/users/{userId}", uid).delete()));
  await step("getUserAfterDelete", () => call(admin.path("/app/users/{userId}", uid).get()));
  await step("writeAfterDelete", () => call(user.path("/app/transactions").post({ body: { contents: "late" } })));
}
console.log(JSON.stringify(out));
