// tsc does not keep the executable bit; `npx lutham` needs it on dist/cli.js.
import { chmodSync, existsSync } from 'node:fs';
if (existsSync('dist/cli.js')) chmodSync('dist/cli.js', 0o755);
