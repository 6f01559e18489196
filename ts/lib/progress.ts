/**
 * Progress on stderr for the Python side's (stage, fraction) reports: a cli-progress bar on a
 * terminal, one line per stage otherwise (logs and CI).
 */
import cliProgress from 'cli-progress';
import type { Progress } from '../bridge/python.js';
import { escapeText } from '../render/escape.js';

export function progressBar(enabled: boolean): { update: Progress; stop: () => void } {
  if (!enabled) return { update: () => {}, stop: () => {} };
  if (!process.stderr.isTTY) {
    let last = '';
    return {
      update: (stage, fraction) => {
        if (stage !== last) process.stderr.write(`lutham: ${escapeText(stage)} (${Math.round(fraction * 100)}%)\n`);
        last = stage;
      },
      stop: () => {},
    };
  }
  const bar = new cliProgress.SingleBar(
    { format: 'lutham |{bar}| {percentage}% {stage}', stream: process.stderr, hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  bar.start(1000, 0, { stage: 'starting Python' });
  return {
    update: (stage, fraction) => bar.update(Math.round(fraction * 1000), { stage: escapeText(stage) }),
    stop: () => bar.stop(),
  };
}
