/// <reference types="vitest/config" />
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

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
  },
  preview: { host: "127.0.0.1", port: 4173, strictPort: true },
  test: {
    environment: "jsdom",
    include: ["src/**/*.test.ts", "src/**/*.test.tsx"],
    restoreMocks: true,
  },
});
