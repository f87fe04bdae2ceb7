/// <reference types="vitest/config" />
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// Optional: AGORA_GATEWAY_URL=http://127.0.0.1:8080 proxies the gateway's paths
// through the dev server, so the app runs same-origin (no CORS, no
// VITE_API_BASE_URL); the OAuth redirect URI is then <dev origin>/auth/callback.
// (Node globals without @types/node: this file only reads one variable.)
declare const process: { env: Record<string, string | undefined> };
const gateway = process.env.AGORA_GATEWAY_URL;
const GATEWAY_PATHS = ["/v1", "/oauth", "/.well-known", "/media", "/healthz", "/readyz", "/docs"];
const proxy = gateway
  ? Object.fromEntries(GATEWAY_PATHS.map((path) => [path, { target: gateway, changeOrigin: false }]))
  : undefined;

// The storefront: built into dist/ and served by the gateway at "/" (index.html
// not cached, the hashed files under /assets/ cached for a year). `npm run dev`
// (make web-dev) serves it on 127.0.0.1:5173 against the gateway named by
// VITE_API_BASE_URL, which allows that origin through CORS.
export default defineConfig({
  base: "/",
  plugins: [react()],
  build: {
    outDir: "dist",
    assetsDir: "assets",
    sourcemap: false,
    target: "es2022",
    // The e2e scripts and unit tests are never part of the app.
    emptyOutDir: true,
  },
  server: {
    host: "127.0.0.1",
    port: 5173,
    strictPort: true,
    // Only this folder's files are served in development.
    fs: { strict: true, allow: ["."] },
    proxy,
  },
  preview: { host: "127.0.0.1", port: 4173, strictPort: true, proxy },
  test: {
    environment: "jsdom",
    include: ["src/**/*.test.ts", "src/**/*.test.tsx"],
    restoreMocks: true,
  },
});
