// The end-to-end journey through the built UI served by the real server, in Debian's Chromium
// driven by playwright-core: create a project and labels, add the synthetic source, watch live
// WebRTC video, capture a frame, click-to-segment and draw on it, save the prompt, see detections
// in the live view (they arrive on the data channel), change model parameters (with a validation
// message on the way), add a sink, export the project and import the archive again.
// A screenshot of each main screen goes to apps/ui/e2e-screenshots/.
//
// Run: npm run e2e (builds first). Env: VISPROMPT_SERVER_BIN (default ../../target/debug/
// visprompt-server), CHROMIUM (default /usr/bin/chromium), HEADED=1 to watch.
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { startServer } from "./server.mjs";

const uiDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const repoRoot = resolve(uiDir, "../..");
const shots = join(uiDir, "e2e-screenshots");
const started = Date.now();

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

function step(name) {
  console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${name}`);
}

rmSync(shots, { recursive: true, force: true });
mkdirSync(shots, { recursive: true });

const server = await startServer({ uiDir: join(uiDir, "dist"), repoRoot });
step(`server on ${server.origin}${server.haveModels ? " with the tiny test models" : " (no test models: segment will fail)"}`);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: process.env.HEADED !== "1",
  args: ["--no-sandbox", "--autoplay-policy=no-user-gesture-required"],
});
const pageErrors = [];
let failed = false;
try {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, acceptDownloads: true });
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  page.on("pageerror", (error) => pageErrors.push(error.message));
  const shot = (name) => page.screenshot({ path: join(shots, `${name}.png`) });
  const nav = (name) => page.getByRole("navigation", { name: "Project" }).getByRole("link", { name, exact: true });
  const api = async (path) => (await fetch(`${server.origin}${path}`)).json();

  // 1. Welcome, create a project.
  await page.goto(server.origin + "/");
  await page.getByRole("heading", { name: "Welcome to visprompt" }).waitFor();
  await shot("01-welcome");
  step("welcome screen");
  // An empty name is refused by the server; its message shows next to the field.
  await page.getByRole("button", { name: "Create project" }).click();
  await page.locator(".field-error").filter({ hasText: "name" }).waitFor();
  await page.getByLabel("Project name", { exact: true }).fill("E2E journey");
  await page.getByRole("button", { name: "Create project" }).click();
  await page.waitForURL(/\/projects\/[0-9a-f-]+\/labels$/);
  const projectId = page.url().split("/")[4];
  step(`project ${projectId}`);

  // 2. Labels: two, one renamed and recoloured.
  for (const name of ["disc", "blob"]) {
    await page.getByLabel("Label name", { exact: true }).fill(name);
    await page.getByRole("button", { name: "Add label" }).click();
    await page.locator(".label-chip", { hasText: name }).waitFor();
  }
  const blobRow = page.getByTestId("label-row").filter({ hasText: "blob" });
  await blobRow.getByRole("button", { name: "Rename" }).click();
  await page.getByLabel("New label name").fill("segmented");
  await page.getByRole("button", { name: "Save" }).click();
  await page.locator(".label-chip", { hasText: "segmented" }).waitFor();
  await page.getByLabel("Colour of segmented").fill("#00c8ff");
  await page.waitForFunction(
    async (pid) => {
      const r = await fetch(`/api/v1/projects/${pid}/labels`);
      return (await r.json()).labels.some((l) => l.name === "segmented" && l.color === "#00C8FF");
    },
    projectId,
  );
  await shot("02-labels");
  step("labels created, renamed, recoloured");

  // 3. The synthetic source.
  await nav("Sources").click();
  await page.getByRole("button", { name: "Add source" }).click();
  await page.getByLabel("Source kind").selectOption("synthetic");
  await page.locator("form").getByRole("button", { name: "Add source" }).click();
  await page.getByTestId("source-row").filter({ hasText: "Synthetic scene" }).waitFor();
  await page.getByTestId("source-row").locator(".chip", { hasText: "running" }).waitFor();
  await shot("03-sources");
  step("synthetic source running");

  // 4. Live view: WebRTC video plays.
  await nav("Live view").click();
  await page.getByTestId("connection-state").filter({ hasText: "connected" }).waitFor({ timeout: 30000 });
  await page.waitForFunction(() => {
    const v = document.querySelector("video");
    return v && v.videoWidth > 0 && v.currentTime > 0;
  });
  const t0 = await page.evaluate(() => document.querySelector("video").currentTime);
  await page.waitForTimeout(1500);
  const video = await page.evaluate(() => {
    const v = document.querySelector("video");
    return { width: v.videoWidth, height: v.videoHeight, time: v.currentTime };
  });
  check(video.width > 0 && video.height > 0, `video has a size (${video.width}x${video.height})`);
  check(video.time > t0 + 0.5, `video time advances (${t0} → ${video.time})`);
  await page.getByTestId("channel-state").filter({ hasText: "open" }).waitFor();
  await page.getByTestId("video-fps").filter({ hasText: "fps" }).waitFor();
  await shot("04-live");
  step(`live video ${video.width}x${video.height}, time ${t0.toFixed(2)} → ${video.time.toFixed(2)}`);

  // 5. Capture a frame; find the red disc in it.
  await page.getByRole("button", { name: "Capture frame" }).click();
  await page.waitForURL(/\/prompts\/new\?frame=/);
  const canvas = page.getByTestId("editor-canvas");
  await canvas.waitFor();
  const disc = await page.evaluate(async () => {
    const href = document.querySelector('[data-testid="editor-canvas"] > image').getAttribute("href");
    const image = new Image();
    image.src = href;
    await image.decode();
    const c = document.createElement("canvas");
    c.width = image.naturalWidth;
    c.height = image.naturalHeight;
    const g = c.getContext("2d");
    g.drawImage(image, 0, 0);
    const { data } = g.getImageData(0, 0, c.width, c.height);
    let n = 0, sx = 0, sy = 0, minX = 1e9, maxX = -1, minY = 1e9, maxY = -1;
    for (let y = 0; y < c.height; y++) {
      for (let x = 0; x < c.width; x++) {
        const i = (y * c.width + x) * 4;
        const [r, gr, b] = [data[i], data[i + 1], data[i + 2]];
        if (r > 90 && r > 2 * gr && r > 2 * b) {
          n++; sx += x; sy += y;
          minX = Math.min(minX, x); maxX = Math.max(maxX, x); minY = Math.min(minY, y); maxY = Math.max(maxY, y);
        }
      }
    }
    return { n, cx: sx / n, cy: sy / n, radius: Math.min(maxX - minX, maxY - minY) / 2 };
  });
  check(disc.n > 500 && disc.radius > 15, `the red disc is in the captured frame (${JSON.stringify(disc)})`);
  /** Screen position of a frame pixel, through the SVG's own transform. */
  const toScreen = (x, y) =>
    page.evaluate(
      ([fx, fy]) => {
        const svg = document.querySelector('[data-testid="editor-canvas"]');
        const p = new DOMPoint(fx, fy).matrixTransform(svg.getScreenCTM());
        return { x: p.x, y: p.y };
      },
      [x, y],
    );
  step(`frame captured; disc at ${disc.cx.toFixed(0)},${disc.cy.toFixed(0)} r≈${disc.radius.toFixed(0)}`);

  // 6. Click-to-segment on the disc with the "segmented" label; keep the mask.
  await page.getByRole("radio", { name: /segmented/ }).click();
  const centre = await toScreen(disc.cx, disc.cy);
  await page.mouse.click(centre.x, centre.y);
  await page.getByTestId("segment-status").filter({ hasText: "Mask:" }).waitFor({ timeout: 60000 });
  await page.getByTestId("segment-preview").waitFor();
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="annotation-list"] li').length === 1);
  step("click-to-segment answered a mask, kept");

  // 7. A polygon around the disc with the "disc" label, then undo and redo it.
  await page.getByRole("radio", { name: /disc/ }).click();
  await page.keyboard.press("p");
  const corners = 14;
  let first;
  for (let k = 0; k < corners; k++) {
    const angle = (2 * Math.PI * k) / corners;
    const p = await toScreen(disc.cx + 0.8 * disc.radius * Math.cos(angle), disc.cy + 0.8 * disc.radius * Math.sin(angle));
    if (k === 0) first = p;
    await page.mouse.click(p.x, p.y);
  }
  await page.mouse.click(first.x, first.y); // closes the polygon
  const annotationCount = () => page.evaluate(() => document.querySelectorAll('[data-testid="annotation-list"] li').length);
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="annotation-list"] li').length === 2);
  await page.keyboard.press("Control+z");
  check((await annotationCount()) === 1, "undo removes the polygon");
  await page.keyboard.press("Control+Shift+z");
  check((await annotationCount()) === 2, "redo restores it");
  await shot("05-editor");
  step("polygon drawn; undo/redo work");

  // 8. Save the prompt.
  await page.getByRole("button", { name: "Save as visual prompt" }).click();
  await page.waitForURL(/\/prompts$/);
  await page.getByTestId("prompt-card").first().waitFor();
  await page.waitForFunction(() => document.querySelector('[data-testid="prompt-card"] svg image'));
  await shot("06-prompts");
  // Opening it shows the stored annotations again.
  await page.getByTestId("prompt-card").first().locator("a").click();
  await page.getByRole("heading", { name: "Edit visual prompt" }).waitFor();
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="annotation-list"] li').length === 2);
  await nav("Prompts").click();
  step("visual prompt saved and reopened");

  // 9. Detections of "disc" in the live view, from the data channel.
  await nav("Live view").click();
  await page.getByTestId("connection-state").filter({ hasText: "connected" }).waitFor({ timeout: 30000 });
  await page.getByTestId("detections").locator(".label-chip", { hasText: "disc" }).first().waitFor({ timeout: 30000 });
  await page.getByTestId("overlay-detection").first().waitFor();
  await page.getByTestId("server-latency").filter({ hasText: "ms" }).waitFor();
  const figures = await page.getByTestId("live-figures").innerText();
  await shot("07-live-detections");
  step(`detections on the live view; ${figures.replace(/\s+/g, " ")}`);
  // The overlay switch hides the browser's drawing.
  await page.getByLabel("Show overlay").uncheck();
  check((await page.getByTestId("live-overlay").count()) === 0, "overlay hidden when switched off");
  await page.getByLabel("Show overlay").check();

  // 10. Model parameters: an out-of-range value is refused in the form, a valid one is saved.
  await nav("Models").click();
  await page.getByLabel("Algorithm").waitFor();
  check((await page.getByLabel("Algorithm").inputValue()) === "classical", "the classical configuration is active and shown");
  await page.getByLabel("Confidence threshold").fill("1.5");
  await page.locator(".param.invalid .field-error", { hasText: "less than 1" }).waitFor();
  await page.getByLabel("Confidence threshold").fill("0.35");
  await page.getByLabel("Max detections").fill("7");
  await page.getByRole("button", { name: "Save parameters" }).click();
  await page.waitForFunction(
    async (pid) => {
      const r = await fetch(`/api/v1/projects/${pid}/models/active`);
      const m = await r.json();
      return m.config.confidence_threshold === 0.35 && m.config.max_detections === 7;
    },
    projectId,
  );
  await page.getByTestId("model-status").locator(".chip").waitFor();
  await shot("08-models");
  step("model parameters validated and saved");

  // 11. A file sink; its state comes from the pipeline.
  await nav("Sinks").click();
  await page.getByRole("button", { name: "Add sink" }).click();
  await page.getByLabel("Sink kind").selectOption("file");
  await page.getByLabel("File path").fill(join(server.media, "predictions.jsonl"));
  await page.locator("form").getByRole("button", { name: "Add sink" }).click();
  await page.getByTestId("sink-row").locator(".chip").waitFor();
  await page.getByTestId("sink-row").filter({ hasText: /[1-9]\d* sent/ }).waitFor({ timeout: 20000 });
  await shot("09-sinks");
  step("file sink publishing");

  // 12. A sample dataset as the active source, browsed frame by frame from the live view.
  await nav("Sources").click();
  await page.getByRole("button", { name: "Add source" }).click();
  await page.getByLabel("Source kind").selectOption("sample_dataset");
  await page.getByLabel("Dataset").locator("option", { hasText: "frames" }).first().waitFor({ state: "attached" });
  await page.locator("form").getByRole("button", { name: "Add source" }).click();
  await page.getByTestId("frame-position").filter({ hasText: "1 /" }).waitFor();
  const frameCount = Number((await page.getByTestId("frame-position").innerText()).split("/")[1]);
  check(frameCount > 1, `the dataset has frames (${frameCount})`);
  await page.getByRole("button", { name: "Next" }).click();
  await page.getByTestId("frame-position").filter({ hasText: `2 / ${frameCount}` }).waitFor();
  await page.getByRole("button", { name: "Last" }).click();
  await page.getByTestId("frame-position").filter({ hasText: `${frameCount} / ${frameCount}` }).waitFor();
  await shot("10-source-frames");
  await nav("Live view").click();
  await page.getByTestId("connection-state").filter({ hasText: "connected" }).waitFor({ timeout: 30000 });
  await page.getByRole("button", { name: "First" }).click();
  // Seeking makes the server process that frame: its result names the frame's index.
  await page.getByText("source frame 1").waitFor({ timeout: 20000 });
  await shot("11-live-dataset");
  step(`sample dataset browsed (${frameCount} frames), seek result on the data channel`);

  // 13. Export the project, then import the archive as a new project.
  await nav("Project").click();
  const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Export project" }).click()]);
  const archivePath = join(shots, "..", ".e2e-export.zip");
  await download.saveAs(archivePath);
  const archive = readFileSync(archivePath);
  check(archive.length > 1000 && archive.subarray(0, 2).toString() === "PK", `export is a zip (${archive.length} bytes)`);
  step(`exported ${download.suggestedFilename()} (${archive.length} bytes)`);
  await page.getByLabel("Switch project").selectOption(""); // the switcher: all projects
  await page.waitForURL(/\/projects$/);
  await page.getByLabel("Project archive").setInputFiles(archivePath);
  await page.getByLabel("Imported project name").fill("E2E imported");
  await page.getByRole("button", { name: "Import" }).click();
  await page.getByText("Imported as").waitFor();
  await page.getByTestId("project-row").filter({ hasText: "E2E imported" }).waitFor();
  rmSync(archivePath, { force: true });
  const projects = await api("/api/v1/projects");
  const imported = projects.projects.find((p) => p.name === "E2E imported");
  check(imported && !imported.active, "the imported project exists and is inactive");
  const importedPrompts = await api(`/api/v1/projects/${imported.id}/prompts`);
  check(importedPrompts.prompts.length === 1, "the imported project has the prompt");
  await shot("12-projects");
  step("imported the archive as a new project");

  check(pageErrors.length === 0, `no uncaught page errors (${pageErrors.join("; ")})`);
} catch (error) {
  failed = true;
  console.error(error);
  console.error("--- server log (tail) ---\n" + server.log().slice(-4000));
} finally {
  await browser.close();
  await server.stop();
}
console.log(`screenshots: ${shots}`);
console.log(`${failed ? "FAILED" : "passed"} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
process.exit(failed ? 1 : 0);
