/// <reference types="vite/client" />

interface ImportMetaEnv {
  /** Origin (and optional path prefix) of the backend API; '' means same origin. */
  readonly VITE_API_BASE_URL?: string;
}

interface ImportMeta {
  readonly env: ImportMetaEnv;
}
