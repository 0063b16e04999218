// Fails when the checked-in typed client (src/api/schema.d.ts) differs from what
// openapi-typescript makes of ../../openapi/openapi.json today: regenerate into a temp file, diff.
// The options must match the `generate` script in package.json.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const uiDir = join(dirname(fileURLToPath(import.meta.url)), "..");
const spec = join(uiDir, "../../openapi/openapi.json");
const checkedIn = join(uiDir, "src/api/schema.d.ts");
const scratch = mkdtempSync(join(tmpdir(), "visprompt-client-"));
const fresh = join(scratch, "schema.d.ts");
try {
  execFileSync(join(uiDir, "node_modules/.bin/openapi-typescript"), [spec, "--empty-objects-unknown", "--default-non-nullable=false", "-o", fresh], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  if (readFileSync(fresh, "utf8") !== readFileSync(checkedIn, "utf8")) {
    try {
      execFileSync("diff", ["-u", checkedIn, fresh], { stdio: "inherit" });
    } catch {
      // diff exits 1 on differences; its output is what we wanted to show.
    }
    console.error("src/api/schema.d.ts is stale: run `npm run generate` and commit it.");
    process.exit(1);
  }
  console.log("src/api/schema.d.ts matches openapi/openapi.json");
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
