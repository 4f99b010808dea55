// A relying party in another language, from the .proto alone: @grpc/proto-loader reads proto/verifier/v1/verifier.proto
// at run time (no generated code), @grpc/grpc-js calls CreateChallenge, Appraise and GetSigningKeys, and jose
// verifies the EAR with the JWKS from GetSigningKeys (ES256 only, the `typ` checked when one is expected).
// claims_json is parsed and compared with the google.protobuf.Struct `claims`. A composite call (an SEV-SNP or TDX
// report with its GPUs' reports) adds "collateral" ([{"name", "path"}]) and "gpus" ([{"evidence": path,
// "collateral": [{"name", "path"}]}]); the answer then lists the components and which component each finding is of.
//
//   node client.mjs '{"target": "127.0.0.1:50051", "proto": "../../proto", "evidence": "evidence.bin",
//                     "kind": "EVIDENCE_KIND_NITRO", "typ": "JWT"}'
//
// Prints one JSON object on stdout (what tests/integration/test_node_client.py checks); exits 1 with the reason on
// stderr when a call or a check fails.
import { readFileSync } from "node:fs";
import path from "node:path";

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from "jose";

const options = JSON.parse(process.argv[2]);

function call(client, method, request) {
  const deadline = new Date(Date.now() + 30_000);
  return new Promise((resolve, reject) => {
    client[method](request, { deadline }, (error, reply) => (error ? reject(error) : resolve(reply)));
  });
}

// google.protobuf.Struct / Value as proto-loader hands them over (oneof `kind` named) to plain JSON values.
function plainValue(value) {
  switch (value.kind) {
    case "nullValue":
      return null;
    case "numberValue":
      return value.numberValue;
    case "stringValue":
      return value.stringValue;
    case "boolValue":
      return value.boolValue;
    case "structValue":
      return plainStruct(value.structValue);
    case "listValue":
      return (value.listValue.values ?? []).map(plainValue);
    default:
      throw new Error(`unknown Struct value kind ${value.kind}`);
  }
}

function plainStruct(struct) {
  return Object.fromEntries(Object.entries(struct.fields ?? {}).map(([key, value]) => [key, plainValue(value)]));
}

// Equal as JSON values, numbers compared as doubles (the Struct has only doubles).
function sameJson(a, b) {
  if (typeof a === "number" || typeof b === "number") return Number(a) === Number(b) && typeof a === typeof b;
  if (a === null || b === null || typeof a !== "object" || typeof b !== "object") return a === b;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((key) => Object.hasOwn(b, key) && sameJson(a[key], b[key]));
}

// [{"name", "path"}] -> CollateralFile messages.
function files(list) {
  return (list ?? []).map((file) => ({ name: file.name, content: readFileSync(file.path) }));
}

async function main() {
  const definition = protoLoader.loadSync("verifier/v1/verifier.proto", {
    includeDirs: [path.resolve(options.proto)],
    keepCase: true, // the .proto's field names: claims_json, jwks_json
    longs: String,
    enums: String,
    bytes: Buffer,
    defaults: true,
    oneofs: true,
  });
  const verifierV1 = grpc.loadPackageDefinition(definition).verifier.v1;
  const client = new verifierV1.Verifier(options.target, grpc.credentials.createInsecure());
  try {
    const challenge = await call(client, "CreateChallenge", {});
    const appraisal = await call(client, "Appraise", {
      kind: options.kind,
      evidence: readFileSync(options.evidence),
      collateral: files(options.collateral),
      gpus: (options.gpus ?? []).map((gpu) => ({ evidence: readFileSync(gpu.evidence), collateral: files(gpu.collateral) })),
    });
    const keys = await call(client, "GetSigningKeys", {});

    const jwks = JSON.parse(keys.jwks_json);
    const header = decodeProtectedHeader(appraisal.token);
    const appraisedAt = new Date(Number(appraisal.appraised_at.seconds) * 1000);
    const verifyOptions = { algorithms: ["ES256"], currentDate: appraisedAt };
    if (options.typ) verifyOptions.typ = options.typ;
    const { payload, protectedHeader } = await jwtVerify(appraisal.token, createLocalJWKSet(jwks), verifyOptions);
    let refused = null; // a token signed by a key outside the set must not verify
    try {
      await jwtVerify(appraisal.token, createLocalJWKSet({ keys: [] }), verifyOptions);
    } catch (error) {
      refused = error.code;
    }

    const claimsJson = JSON.parse(appraisal.claims_json);
    const struct = plainStruct(appraisal.claims);
    process.stdout.write(
      JSON.stringify({
        challenge_nonce_bytes: challenge.nonce.length,
        challenge_expires_at: challenge.expires_at.seconds,
        status: appraisal.status,
        tee: appraisal.tee,
        policy_id: appraisal.policy_id,
        findings: appraisal.findings.map((finding) => finding.code),
        header,
        protected_header: protectedHeader,
        payload,
        jwks_kids: jwks.keys.map((key) => key.kid),
        empty_set_refused: refused,
        claims_json: claimsJson,
        claims_struct_equal: sameJson(claimsJson, struct),
        finding_components: appraisal.findings.map((finding) => [finding.component, finding.code]),
        components: appraisal.components.map((component) => ({
          name: component.name,
          tee: component.tee,
          status: component.status,
          trust_vector: component.trust_vector,
          evidence_sha384: component.evidence_sha384,
          claims: JSON.parse(component.claims_json),
        })),
      }) + "\n",
    );
  } finally {
    client.close();
  }
}

main().catch((error) => {
  process.stderr.write(`node client failed: ${error.code ?? ""} ${error.message}\n`);
  process.exit(1);
});
