// Vite build and dev server. The dev server forwards the API to a locally running visprompt
// server, so the app can use the same relative URLs it uses when the server hosts it.
import { defineConfig } from "vitest/config";
import react from "@vitejs/plugin-react";

const apiTarget = process.env.VISPROMPT_API ?? "http://127.0.0.1:9100";

// The server refuses state-changing requests from origins it does not know (CORS_ORIGINS); when
// proxied, the browser's origin is the dev server's, so present the server's own instead.
const asSameOrigin = {
  target: apiTarget,
  changeOrigin: true,
  headers: { origin: apiTarget },
};

export default defineConfig({
  plugins: [react()],
  server: {
    proxy: {
      "/api": asSameOrigin,
      "/health": asSameOrigin,
    },
    // The model-parameter form reads its schema straight from the checked-in OpenAPI document.
    fs: { allow: ["../.."] },
  },
  build: { outDir: "dist", sourcemap: false, chunkSizeWarningLimit: 1200 },
  test: {
    environment: "jsdom",
    include: ["src/**/*.test.{ts,tsx}"],
  },
});
