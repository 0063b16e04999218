// Starts the real visprompt server for the end-to-end test: a free loopback port, a fresh data
// folder, no demo project, offline, the built UI, the small random-weight test models (so
// click-to-segment runs without downloads) and a WebRTC port range of its own.
import { spawn } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export function freePort() {
  return new Promise((resolvePort, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolvePort(port));
    });
  });
}

/** MODELS_DIR layout from the vision crate's parity fixtures (random weights, tiny). */
function tinyModels(repoRoot, dest) {
  const fixtures = join(repoRoot, "adapters/vision/tests/fixtures");
  const copies = [
    ["encoders/dinov3/config.json", "dinov3_small/config.json"],
    ["encoders/dinov3/model.safetensors", "dinov3_small/model.safetensors"],
    ["segmenters/tiny/model.pth", "sam_hq_tiny/sam_hq_vit_tiny.pth"],
    ["models/sam_hq_tiny.config.json", "sam_hq_tiny/config.json"],
  ];
  for (const [from, to] of copies) {
    const source = join(fixtures, from);
    if (!existsSync(source)) return false;
    mkdirSync(join(dest, to, ".."), { recursive: true });
    cpSync(source, join(dest, to));
  }
  return true;
}

export async function startServer({ uiDir, repoRoot, extraEnv = {} }) {
  const binary = resolve(process.env.VISPROMPT_SERVER_BIN ?? join(repoRoot, "target/debug/visprompt-server"));
  if (!existsSync(binary)) throw new Error(`no server binary at ${binary} (set VISPROMPT_SERVER_BIN)`);
  const port = await freePort();
  const scratch = mkdtempSync(join(tmpdir(), "visprompt-e2e-"));
  const media = join(scratch, "media");
  mkdirSync(media);
  const models = join(scratch, "models");
  const haveModels = tinyModels(repoRoot, models);
  // 50 UDP ports of our own, away from the default 50000-50050 another server may hold.
  const rtcBase = 51000 + (port % 150) * 60;
  const origin = `http://127.0.0.1:${port}`;
  const env = {
    ...process.env,
    HOST: "127.0.0.1",
    PORT: String(port),
    DB_DATA_DIR: join(scratch, "data"),
    OFFLINE: "1",
    DEMO_PROJECT: "false",
    UI_DIR: uiDir,
    MEDIA_ROOTS: media,
    // CORS_ORIGINS is left at its default (port 9100): the server lets its own pages through
    // on any port, and this journey shows it.
    WEBRTC_PORT_RANGE: `${rtcBase}-${rtcBase + 49}`,
    WEBRTC_LOOPBACK_ONLY: "true",
    LOG_LEVEL: process.env.LOG_LEVEL ?? "warn",
    ...(haveModels ? { MODELS_DIR: models } : {}),
    ...extraEnv,
  };
  const child = spawn(binary, [], { env, stdio: ["ignore", "pipe", "pipe"] });
  const log = [];
  const keep = (chunk) => {
    log.push(chunk.toString());
    if (log.length > 400) log.shift();
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  let exited = null;
  child.on("exit", (code, signal) => (exited = { code, signal }));

  const deadline = Date.now() + 60000;
  for (;;) {
    if (exited) throw new Error(`server exited (${JSON.stringify(exited)}):\n${log.join("")}`);
    try {
      const response = await fetch(`${origin}/health`);
      if (response.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`server did not answer /health within 60 s:\n${log.join("")}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    origin,
    media,
    haveModels,
    log: () => log.join(""),
    async stop() {
      if (!exited) {
        child.kill("SIGTERM");
        await new Promise((r) => {
          const timer = setTimeout(() => {
            child.kill("SIGKILL");
            r();
          }, 5000);
          child.once("exit", () => {
            clearTimeout(timer);
            r();
          });
        });
      }
      rmSync(scratch, { recursive: true, force: true });
    },
  };
}
