// Validate one .glb/.gltf with the Khronos glTF validator and print its JSON report on stdout.
// Usage: node validate_gltf.mjs <file> [<node_modules dir>]
// Called by gltf_validate.py; external buffers/images are resolved next to the file.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

const [file, modulesDir] = process.argv.slice(2);
if (!file) {
  console.error("usage: node validate_gltf.mjs <file> [<node_modules dir>]");
  process.exit(2);
}
const require = createRequire(path.join(modulesDir || process.cwd(), "noop.js"));
let validator;
try {
  validator = require("gltf-validator");
} catch (err) {
  console.error("MISSING_PACKAGE gltf-validator: " + err.message);
  process.exit(3);
}

const asset = fs.readFileSync(file);
const loadExternal = (uri) =>
  new Promise((resolve, reject) => {
    fs.readFile(path.resolve(path.dirname(file), decodeURIComponent(uri)), (err, data) =>
      err ? reject(err.toString()) : resolve(new Uint8Array(data)));
  });

validator
  .validateBytes(new Uint8Array(asset), {
    uri: path.basename(file),
    maxIssues: 0,
    writeTimestamp: false,
    externalResourceFunction: loadExternal,
  })
  .then((report) => process.stdout.write(JSON.stringify(report)))
  .catch((err) => {
    console.error("VALIDATOR_REJECTED " + err);
    process.exit(4);
  });
