// Prints the objects of a multi-document YAML file as one JSON array (for jq).
// Usage: node tojson.mjs FILE.yaml
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

const docs = parseAllDocuments(readFileSync(process.argv[2], "utf8"), { uniqueKeys: true });
const out = [];
for (const doc of docs) {
  if (doc.errors.length) throw new Error(doc.errors[0].message);
  const obj = doc.toJS();
  if (obj !== null && obj !== undefined) out.push(obj);
}
console.log(JSON.stringify(out));
