// A Node.js client for modelregistry.v1.ModelService, built at run time from
// the contract in protos/ by @grpc/proto-loader: no generated code. The
// google/api and google/rpc imports come from the google-proto-files package.
//
// Messages use the proto field names (keepCase: user_id, access_grants, ...).
// int64 fields (created_at, updated_at) are decimal strings (longs: String),
// as in protobuf's JSON mapping, so no value loses precision. params and meta
// are google.protobuf.Struct on the wire and plain JavaScript objects here.

import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import protobuf from "protobufjs";

const require = createRequire(import.meta.url);
export const PROTOS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../protos");
const GOOGLEAPIS = path.dirname(require.resolve("google-proto-files/package.json"));
const INCLUDE_DIRS = [PROTOS, GOOGLEAPIS];

const definition = protoLoader.loadSync("modelregistry/v1/model_service.proto", {
  includeDirs: INCLUDE_DIRS,
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: false,
});
const ModelService = grpc.loadPackageDefinition(definition).modelregistry.v1.ModelService;

// google.rpc.Status and the detail types the server sends, for reading the
// grpc-status-details-bin trailer.
const statusTypes = new protobuf.Root();
statusTypes.resolvePath = (origin, target) =>
  INCLUDE_DIRS.map((dir) => path.join(dir, target)).find(existsSync) ??
  protobuf.util.path.resolve(origin, target);
statusTypes.loadSync(["google/rpc/status.proto", "google/rpc/error_details.proto"], {
  keepCase: true,
});
const Status = statusTypes.lookupType("google.rpc.Status");

/** A ModelService client on `target` ("host:port"); plaintext unless
 * `credentials` (a grpc.ChannelCredentials) is given. */
export function connect(target, credentials = grpc.credentials.createInsecure()) {
  return new ModelService(target, credentials);
}

/** A failed call: `code` is the gRPC status code (6 is ALREADY_EXISTS),
 * `details` the google.rpc.Status details, each with its "@type". */
export class RegistryError extends Error {
  constructor(code, message, details) {
    super(message);
    this.code = code;
    this.details = details;
  }

  toJSON() {
    return { code: this.code, message: this.message, details: this.details };
  }
}

/** Creates `model` (params and meta as plain objects) with the API key
 * `apiKey`; resolves to the model as stored, rejects with a RegistryError. */
export function createModel(client, apiKey, model, { timeoutSeconds = 10 } = {}) {
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${apiKey}`);
  const request = {
    model: { ...model, params: toStructOrUnset(model.params), meta: toStructOrUnset(model.meta) },
  };
  const deadline = new Date(Date.now() + timeoutSeconds * 1000);
  return new Promise((resolve, reject) => {
    client.CreateModel(request, metadata, { deadline }, (error, created) => {
      if (error) {
        reject(asRegistryError(error));
        return;
      }
      resolve({ ...created, params: fromStruct(created.params), meta: fromStruct(created.meta) });
    });
  });
}

function asRegistryError(error) {
  const [trailer] = error.metadata?.get("grpc-status-details-bin") ?? [];
  if (!trailer) {
    return new RegistryError(error.code, error.details, []);
  }
  const status = Status.decode(trailer);
  const details = status.details.map((any) => {
    const type = statusTypes.lookup(any.type_url.slice(any.type_url.lastIndexOf("/") + 1));
    if (!(type instanceof protobuf.Type)) {
      return { "@type": any.type_url }; // a detail type this client does not know
    }
    return { "@type": any.type_url, ...type.toObject(type.decode(any.value), { defaults: true }) };
  });
  return new RegistryError(status.code, status.message, details);
}

// -- google.protobuf.Struct <-> JavaScript values ----------------------------
// proto-loader takes the google.protobuf types from protobufjs, whose field
// names are camelCase even with keepCase (numberValue, not number_value).

export function toStruct(object) {
  return { fields: Object.fromEntries(Object.entries(object).map(([k, v]) => [k, toValue(v)])) };
}

function toValue(value) {
  if (value === null) return { nullValue: "NULL_VALUE" };
  if (Array.isArray(value)) return { listValue: { values: value.map(toValue) } };
  switch (typeof value) {
    case "number":
      return { numberValue: value };
    case "string":
      return { stringValue: value };
    case "boolean":
      return { boolValue: value };
    case "object":
      return { structValue: toStruct(value) };
    default:
      throw new TypeError(`a ${typeof value} has no JSON form`);
  }
}

function toStructOrUnset(object) {
  return object === undefined || object === null ? undefined : toStruct(object);
}

export function fromStruct(struct) {
  return Object.fromEntries(
    Object.entries(struct?.fields ?? {}).map(([k, v]) => [k, fromValue(v)]),
  );
}

// A Value has one of these set (oneofs: false: only the one that is set is present).
function fromValue(value) {
  if ("structValue" in value) return fromStruct(value.structValue);
  if ("listValue" in value) return (value.listValue.values ?? []).map(fromValue);
  for (const kind of ["numberValue", "stringValue", "boolValue"]) {
    if (kind in value) return value[kind];
  }
  return null;
}
