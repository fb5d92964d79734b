import react from '@vitejs/plugin-react';
import { defineConfig } from 'vitest/config';

// Where the dev server forwards API calls. In Docker Compose the backend
// service is reachable as http://backend:8000; on a bare host set e.g.
// VITE_PROXY_TARGET=http://127.0.0.1:8000.
const proxyTarget = process.env.VITE_PROXY_TARGET || 'http://backend:8000';

// File watching: bind mounts from macOS/Windows hosts, WSL2 /mnt paths and
// some network file systems deliver no inotify events, so Vite never sees
// edits. Set CHOKIDAR_USEPOLLING=true (the variable chokidar itself has always
// honoured) or VITE_USE_POLLING=true to poll instead, every 300 ms.
const truthy = (value: string | undefined) => /^(1|true|yes|on)$/i.test(value ?? '');
const usePolling = truthy(process.env.CHOKIDAR_USEPOLLING) || truthy(process.env.VITE_USE_POLLING);

const proxied = ['/api', '/health', '/docs', '/openapi.json', '/metrics'];

export default defineConfig({
  plugins: [react()],
  server: {
    host: '0.0.0.0',
    port: 3000,
    strictPort: true,
    // The dev server runs in a container and is reached under whatever host
    // name the developer uses (localhost, a compose service name, a VM IP).
    allowedHosts: true,
    // No CORS handling in Vite: preflights go through the proxy to the backend,
    // so its CORS_ORIGINS decides, as in production.
    cors: false,
    watch: usePolling ? { usePolling: true, interval: 300 } : {},
    proxy: Object.fromEntries(
      proxied.map((path) => [path, { target: proxyTarget, changeOrigin: true, xfwd: true }]),
    ),
  },
  preview: {
    host: '0.0.0.0',
    port: 4173,
    strictPort: true,
  },
  build: {
    outDir: 'dist',
    sourcemap: false,
  },
  test: {
    environment: 'jsdom',
    setupFiles: ['./src/test/setup.ts'],
    include: ['src/**/*.test.{ts,tsx}'],
    restoreMocks: true,
  },
});
