// Vite builds the example as is (TSX with the automatic JSX runtime). The
// workspace packages are linked from ../../packages, whose folders hold no
// node_modules: `preserveSymlinks` resolves their imports (react, the client)
// from here, and `dedupe` keeps one React and one client.
import { defineConfig } from "vite";

export default defineConfig({
  esbuild: { jsx: "automatic" },
  resolve: { preserveSymlinks: true, dedupe: ["react", "react-dom", "@realtime/client"] },
  build: { outDir: "dist", emptyOutDir: true },
});
