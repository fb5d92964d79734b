// ESLint (flat config). `npm run lint` (tsc, then this) runs in the dev container: `inv lint`.
// TypeScript with typescript-eslint's type-checked rules (floating and misused promises among
// them), the Rules of Hooks from React's own plugin.
import js from '@eslint/js';
import reactHooks from 'eslint-plugin-react-hooks';
import { defineConfig, globalIgnores } from 'eslint/config';
import tseslint from 'typescript-eslint';

export default defineConfig([
  // api-schema.d.ts is generated (openapi-typescript, see README.md): checked for drift, not style.
  globalIgnores(['dist/', 'coverage/', 'src/api-schema.d.ts']),
  js.configs.recommended,
  {
    files: ['**/*.{ts,tsx}'],
    extends: [tseslint.configs.recommendedTypeChecked, reactHooks.configs.flat.recommended],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
  },
]);
