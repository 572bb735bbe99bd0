// An independent check of the platform's entry signatures, written from docs/signatures.md
// alone, with nothing but Node's built-in modules (node:crypto has SHA-256 and Ed25519).
//
//   node tests/vectors/verify.mjs [tests/vectors/signatures.json]
//
// Exit 0: every signed entry verifies, every intermediate value (canonical bytes, leaves,
// root, signed message) is the one the vectors state, and every tampered entry fails.
import { createHash, createPublicKey, verify } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const ENTRY_CONTEXT = "alluse-entry-v1\n";
const ROOT_CONTEXT = "alluse-entries-v1\n";
const MAX_DEPTH = 6;

const sha256 = (...parts) => {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest();
};
const unb64url = (text) => Buffer.from(text, "base64url");

// Every field but `signature`, as [name, value] pairs sorted by name (UTF-8 byte order),
// written as compact JSON (JSON.stringify escapes exactly as the platform does), prefixed.
export function canonical(fields) {
  const pairs = Object.entries(fields)
    .filter(([name]) => name !== "signature")
    .sort(([a], [b]) => Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8")));
  return Buffer.concat([Buffer.from(ENTRY_CONTEXT, "utf8"), Buffer.from(JSON.stringify(pairs), "utf8")]);
}

export const leaf = (fields) => sha256(Buffer.from([0x00]), canonical(fields));
const node = (left, right) => sha256(Buffer.from([0x01]), left, right);

// `signature` = <kid>.<base64url Ed25519 signature>.<index>.<base64url of the sibling hashes>
export function parse(signature) {
  const parts = (signature ?? "").split(".");
  if (parts.length !== 4 || !parts[0] || !parts[1] || !/^[0-9]+$/.test(parts[2])) {
    throw new Error("not a service signature");
  }
  const [kid, sig, index, path] = parts;
  const raw = unb64url(path);
  if (raw.length % 32 !== 0) throw new Error("path is not a list of 32-byte hashes");
  const siblings = [];
  for (let i = 0; i < raw.length; i += 32) siblings.push(raw.subarray(i, i + 32));
  if (siblings.length > MAX_DEPTH || Number(index) >= 2 ** siblings.length) {
    throw new Error("index outside the tree");
  }
  return { kid, sig: unb64url(sig), index: Number(index), siblings };
}

export function rootOf(leafHash, index, siblings) {
  let h = leafHash;
  siblings.forEach((sibling, level) => {
    h = (index >> level) & 1 ? node(sibling, h) : node(h, sibling);
  });
  return h;
}

export const message = (depth, root) =>
  Buffer.concat([Buffer.from(ROOT_CONTEXT, "utf8"), Buffer.from([depth]), root]);

// The service that signed `fields`, or an exception saying why not.
export function signerOf(fields, jwks) {
  const { kid, sig, index, siblings } = parse(fields.signature);
  const jwk = jwks.keys.find((k) => k.kid === kid);
  if (!jwk) throw new Error(`kid ${kid} is not published`);
  if (jwk.kty !== "OKP" || jwk.crv !== "Ed25519" || !jwk.service) {
    throw new Error(`key ${kid} is not a service's entry-signing key`);
  }
  const key = createPublicKey({ key: { kty: jwk.kty, crv: jwk.crv, x: jwk.x }, format: "jwk" });
  const msg = message(siblings.length, rootOf(leaf(fields), index, siblings));
  if (!verify(null, msg, key, sig)) throw new Error("signature does not match the entry");
  return jwk.service;
}

function check(vectors) {
  const failures = [];
  const expect = (ok, what) => ok || failures.push(what);
  const hex = (b) => Buffer.from(b).toString("hex");
  let verified = 0;
  vectors.groups.forEach((group, g) => {
    group.entries.forEach((fields, i) => {
      const at = `group ${g} entry ${i}`;
      expect(canonical(fields).equals(Buffer.from(group.canonical[i], "utf8")), `${at}: canonical bytes`);
      expect(hex(leaf(fields)) === group.leaves[i], `${at}: leaf`);
      const { index, siblings, sig } = parse(fields.signature);
      expect(index === i, `${at}: index`);
      expect(siblings.map(hex).join() === group.paths[i].join(), `${at}: path`);
      const root = rootOf(leaf(fields), index, siblings);
      expect(hex(root) === group.root, `${at}: root`);
      expect(hex(message(siblings.length, root)) === group.message, `${at}: signed message`);
      expect(sig.equals(unb64url(group.signature)), `${at}: signature`);
      expect(fields.signed_at === vectors.signed_at, `${at}: signed_at`);
      try {
        expect(signerOf(fields, vectors.jwks) === vectors.signer, `${at}: signer`);
        verified += 1;
      } catch (err) {
        failures.push(`${at}: ${err.message}`);
      }
    });
    expect(group.depth === group.paths[0].length, `group ${g}: depth`);
  });
  vectors.tampered.forEach(({ why, fields }) => {
    let refused = false;
    try {
      signerOf(fields, vectors.jwks);
    } catch {
      refused = true;
    }
    expect(refused, `tampered entry verified (${why})`);
  });
  return { failures, verified };
}

// `--entries <file>`: {jwks, signer, entries} read off a stream; each must verify as `signer`.
function checkEntries({ jwks, signer, entries }) {
  const failures = [];
  entries.forEach((fields, i) => {
    try {
      const found = signerOf(fields, jwks);
      if (found !== signer) failures.push(`entry ${i} (${fields.type}): signed by ${found}`);
    } catch (err) {
      failures.push(`entry ${i} (${fields.type}): ${err.message}`);
    }
  });
  return { failures, verified: entries.length - failures.length };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const wire = process.argv[2] === "--entries";
  const file = (wire ? process.argv[3] : process.argv[2]) ?? new URL("./signatures.json", import.meta.url);
  const input = JSON.parse(readFileSync(file, "utf8"));
  const { failures, verified } = wire ? checkEntries(input) : check(input);
  if (failures.length || verified === 0) {
    console.error(`signature vectors FAILED:\n  ${failures.join("\n  ") || "no entry verified"}`);
    process.exit(1);
  }
  console.log(
    wire
      ? `${verified} entries verified, each signed by ${input.signer}`
      : `signature vectors: ${verified} entries verified, tampered copies refused`,
  );
}
