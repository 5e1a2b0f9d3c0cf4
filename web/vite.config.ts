import { defineConfig } from "vite";

// The dashboard is served by `modelwatch serve` at `/`; `npm run dev` proxies the API to
// a local server so the front end can be worked on with hot reload.
export default defineConfig({
  base: "/",
  build: { target: "es2022", outDir: "dist", assetsInlineLimit: 0, chunkSizeWarningLimit: 300 },
  server: { proxy: { "/api": "http://127.0.0.1:7878" } },
});
