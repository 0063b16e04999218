// End-to-end check of the API token: against a server with API_TOKEN set, the UI asks for the
// token on the first 401, keeps it, and then works (projects, the event stream) with it.
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { startServer } from "./server.mjs";

const uiDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const started = Date.now();
const token = "e2e-" + Math.random().toString(36).slice(2);
const server = await startServer({ uiDir: join(uiDir, "dist"), repoRoot: resolve(uiDir, "../.."), extraEnv: { API_TOKEN: token } });
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args: ["--no-sandbox"] });
let failed = false;
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.setDefaultTimeout(15000);
  await page.goto(server.origin + "/");
  const dialog = page.getByRole("dialog", { name: "API token" });
  await dialog.waitFor();
  await dialog.getByLabel("Token", { exact: true }).fill("wrong");
  await dialog.getByRole("button", { name: "Save token" }).click();
  await page.getByText("The server refused the stored token").waitFor();
  await dialog.getByLabel("Token", { exact: true }).fill(token);
  await dialog.getByRole("button", { name: "Save token" }).click();
  await page.getByRole("heading", { name: "Welcome to visprompt" }).waitFor();
  await page.getByLabel("Project name", { exact: true }).fill("With token");
  await page.getByRole("button", { name: "Create project" }).click();
  await page.waitForURL(/\/labels$/);
  await page.locator(".dot.ok").waitFor(); // the event stream reopened with the token
  const stored = await page.evaluate(() => localStorage.getItem("visprompt.apiToken"));
  if (stored !== token) throw new Error("the token was not kept");
  console.log(`token flow passed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
} catch (error) {
  failed = true;
  console.error(error);
  console.error(server.log().slice(-3000));
} finally {
  await browser.close();
  await server.stop();
}
process.exit(failed ? 1 : 0);
