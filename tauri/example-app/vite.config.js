import { defineConfig } from 'vite';

// Tauri expects a fixed dev port (build.devUrl) and serves the built files from dist/.
export default defineConfig({
  clearScreen: false,
  server: { port: 1420, strictPort: true },
  build: { target: 'es2021', outDir: 'dist', emptyOutDir: true },
});
