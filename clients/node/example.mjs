// Creates a model, then the same id again, and prints what the registry
// answered to each as one JSON object:
//   {"first": {"created": <the model>}, "again": {"error": <code, message, details>}}
//
//   MODEL_REGISTRY_KEY=mr-... node example.mjs [MODEL_ID]
//
// MODEL_REGISTRY_TARGET is the gRPC address (default localhost:50051);
// MODEL_ID defaults to "my-node-model".

import { connect, createModel, RegistryError } from "./modelregistry.mjs";

const target = process.env.MODEL_REGISTRY_TARGET ?? "localhost:50051";
const key = process.env.MODEL_REGISTRY_KEY;
if (!key) {
  console.error("set MODEL_REGISTRY_KEY to an API key");
  process.exit(2);
}
const id = process.argv[2] ?? "my-node-model";

const model = {
  id,
  name: "My Node model",
  base_model_id: "gpt-4",
  params: { temperature: 0.7, max_tokens: 2000, top_p: 1.0 },
  meta: {
    description: "Created from Node.js",
    capabilities: { vision: true, function_calling: true },
  },
  access_grants: [{ access_type: "group", access_id: "developers", permission: "read" }],
  is_active: true,
};

// {"created": <the model>} or {"error": <the RegistryError>}.
async function outcome(call) {
  try {
    return { created: await call };
  } catch (error) {
    if (!(error instanceof RegistryError)) throw error;
    return { error };
  }
}

const client = connect(target);
try {
  const first = await outcome(createModel(client, key, model));
  const again = await outcome(createModel(client, key, { ...model, name: "Again" }));
  console.log(JSON.stringify({ first, again }, null, 2));
} finally {
  client.close();
}
