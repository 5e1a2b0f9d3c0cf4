import { defineConfig, type Plugin } from "vite";
import { brotliCompressSync, gzipSync, constants } from "node:zlib";

// Every text file of the build also as .br and .gz, compressed once here at the highest
// levels, so the server sends the smaller one the browser accepts without compressing
// anything per request (crates/dashboard picks the variant). Node's zlib: no package.
function precompress(): Plugin {
  return {
    name: "modelwatch-precompress",
    apply: "build",
    enforce: "post",
    generateBundle(_options, bundle) {
      for (const [name, file] of Object.entries(bundle)) {
        if (!/\.(js|css|html|svg|json)$/.test(name)) continue;
        const source = file.type === "chunk" ? file.code : file.source;
        const bytes = typeof source === "string" ? Buffer.from(source) : Buffer.from(source);
        const br = brotliCompressSync(bytes, { params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: bytes.length } });
        const gz = gzipSync(bytes, { level: 9 });
        // Small files gain nothing worth a second lookup.
        if (br.length < bytes.length * 0.9) this.emitFile({ type: "asset", fileName: `${name}.br`, source: br });
        if (gz.length < bytes.length * 0.9) this.emitFile({ type: "asset", fileName: `${name}.gz`, source: gz });
      }
    },
  };
}

// The dashboard is served by `modelwatch serve` at `/`; `npm run dev` proxies the API to
// a local server so the front end can be worked on with hot reload.
export default defineConfig({
  base: "/",
  plugins: [precompress()],
  build: { target: "es2022", outDir: "dist", assetsInlineLimit: 0, chunkSizeWarningLimit: 300 },
  server: { proxy: { "/api": "http://127.0.0.1:7878" } },
});
