import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The project root (this file is ts/paths.ts or dist/paths.js). */
export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const PY_BRIDGE_DIR = join(PROJECT_ROOT, 'py_bridge');
export const VENV_PYTHON = join(PROJECT_ROOT, '.venv', 'bin', 'python');
