// Child process for the memory test: runs inspect or compare and prints its peak RSS.
//   node --import tsx measure-rss.ts inspect <file> | compare <dense> <lutham>
import { comparePte } from '../../../ts/pte/compare.js';
import { inspectPte } from '../../../ts/pte/inspect.js';

const [cmd, a, b] = process.argv.slice(2);
const result = cmd === 'inspect' ? await inspectPte(a) : await comparePte(a, b);
const json = JSON.stringify(result);
process.stdout.write(JSON.stringify({ maxRssBytes: process.resourceUsage().maxRSS * 1024, resultBytes: json.length, result }) + '\n');
