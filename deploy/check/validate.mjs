// Validate Kubernetes documents (a JSON array on stdin, as rendered by `kustomize build`) against the
// OpenAPI schemas of their API versions, offline: kubernetes-models and @kubernetes-models/strimzi-kafka-operator
// ship the schemas compiled into validators. Prints one JSON result per document; exits 1 if any is invalid.
import { readFileSync } from "node:fs";

const docs = JSON.parse(readFileSync(0, "utf8"));
const results = [];
let failed = false;
for (const doc of docs) {
  const [group, version] = doc.apiVersion.includes("/") ? doc.apiVersion.split("/") : ["", doc.apiVersion];
  const name = `${doc.kind}/${doc.metadata?.name ?? "?"}`;
  let module;
  if (group === "kafka.strimzi.io") {
    module = `@kubernetes-models/strimzi-kafka-operator/kafka.strimzi.io/${version}/${doc.kind}`;
  } else if (group === "") {
    module = `kubernetes-models/${version}/${doc.kind}`;
  } else {
    module = `kubernetes-models/${group}/${version}/${doc.kind}`;
  }
  try {
    const Model = (await import(module))[doc.kind];
    if (!Model) throw new Error(`no model ${doc.kind} in ${module}`);
    new Model(doc).validate();
    results.push({ name, apiVersion: doc.apiVersion, ok: true });
  } catch (err) {
    failed = true;
    results.push({ name, apiVersion: doc.apiVersion, ok: false, error: String(err.message ?? err).slice(0, 2000) });
  }
}
console.log(JSON.stringify(results));
process.exit(failed ? 1 : 0);
