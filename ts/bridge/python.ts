/**
 * The one door to the Python side (pythonia), with its traps handled
 * (see ../shared/notes/node-python-bridge.md):
 *  - loaded lazily, so `lutham --help` never starts Python;
 *  - PYTHON_BIN is the project's venv (or LUTHAM_PYTHON), checked before import, since a bad
 *    interpreter crashes Node with an uncatchable spawn error;
 *  - pythonia's 100 s call timeout is lifted; instead a watchdog fails a call that reports
 *    no progress for LUTHAM_STALL_SECONDS (default 1800);
 *  - a Python child that dies mid-call rejects the call with a clear error instead of hanging;
 *  - Python exceptions (whose Error.message pythonia leaves empty) become one-line errors;
 *  - Python's stdout is pointed at stderr on the Python side, so the CLI's stdout stays clean.
 */
import { accessSync, constants } from 'node:fs';
import { LuthamError } from '../errors.js';
import { PY_BRIDGE_DIR, VENV_PYTHON } from '../paths.js';

export type Progress = (stage: string, fraction: number) => void;

interface Pythonia {
  python: (module: string) => Promise<any>;
}

let loaded: { pythonia: Pythonia; api: any } | null = null;
let childGone: Promise<never> | null = null;

export function pythonInterpreter(): string {
  const chosen = process.env.LUTHAM_PYTHON || VENV_PYTHON;
  try {
    accessSync(chosen, constants.X_OK);
  } catch {
    throw new LuthamError(
      process.env.LUTHAM_PYTHON
        ? `LUTHAM_PYTHON=${chosen} is not an executable Python interpreter`
        : `the Python environment is missing (${chosen}); run 'npm install' (or set LUTHAM_PYTHON)`,
    );
  }
  return chosen;
}

function stallSeconds(): number {
  const v = Number(process.env.LUTHAM_STALL_SECONDS ?? 1800);
  return Number.isFinite(v) && v > 0 ? v : 1800;
}

async function load(): Promise<{ pythonia: Pythonia; api: any }> {
  if (loaded) return loaded;
  process.env.PYTHON_BIN = pythonInterpreter();
  process.env.REQ_TIMEOUT = String(2 ** 31 - 1); // our watchdog replaces pythonia's fixed timeout
  process.env.PYTHONPATH = [PY_BRIDGE_DIR, process.env.PYTHONPATH].filter(Boolean).join(':');
  process.env.PYTHONUNBUFFERED = '1';
  const mod: any = await import('pythonia');
  const pythonia: Pythonia = mod.default ?? mod;
  const proc = (globalThis as any).__pythonBridge?.com?.proc;
  childGone = new Promise<never>((_, reject) => {
    proc?.once('exit', (code: number | null, signal: string | null) => {
      loaded = null;
      stopBridgeLoop();
      reject(new LuthamError(`the Python side exited unexpectedly (${signal ? `signal ${signal}` : `exit code ${code}`}); see the messages above`));
    });
  });
  childGone.catch(() => {}); // only awaited through call()
  const api = await pythonia.python('lutham.bridge_entry');
  loaded = { pythonia, api };
  return loaded;
}

/** Turns a pythonia rejection into a one-line LuthamError carrying the Python exception text. */
function pythonError(err: unknown): Error {
  if (err instanceof LuthamError) return err;
  const e = err as Error;
  const text = `${e?.message ?? ''}\n${e?.stack ?? ''}`;
  const lines = text.split('\n').map((l) => l.trim()).filter(Boolean);
  const js = lines.find((l) => l.startsWith('*** JS ***') || l.startsWith('🌉'));
  const pyLine = [...lines].reverse().find((l) => /^(\*\*\* JS \*\*\* )?[A-Za-z_.]*(Error|Exception|NotBuilt)\b.*:/.test(l));
  const msg = (pyLine ?? js ?? lines[0] ?? 'unknown Python error').replace(/^\*\*\* JS \*\*\* /, '').replace(/^🌉\s*/, '');
  // "lutham.runtime.RunError: no such file: x" -> "no such file: x"
  return new LuthamError(msg.replace(/^[A-Za-z_][\w.]*(Error|Exception|NotBuilt): /, ''));
}

/**
 * Calls `lutham.bridge_entry.<name>(json)` and returns its JSON result. `progress` receives
 * (stage, fraction in [0,1]) callbacks from Python; each one also feeds the stall watchdog.
 */
export async function callPython(name: string, args: unknown, progress?: Progress): Promise<any> {
  const { api } = await load();
  let timer: NodeJS.Timeout | undefined;
  let rejectStall: (e: Error) => void = () => {};
  const stalled = new Promise<never>((_, reject) => { rejectStall = reject; });
  const arm = () => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      rejectStall(new LuthamError(`the Python side made no progress for ${stallSeconds()} s (LUTHAM_STALL_SECONDS); giving up`));
      shutdownPython(true);
    }, stallSeconds() * 1000);
  };
  arm();
  const onProgress = (stage: string, fraction: number) => {
    arm();
    progress?.(stage, fraction);
  };
  try {
    const call = api[name](JSON.stringify(args ?? null), onProgress);
    const raw = await Promise.race([call, childGone!, stalled]);
    return JSON.parse(String(raw));
  } catch (err) {
    throw pythonError(err);
  } finally {
    if (timer) clearTimeout(timer);
  }
}

/** pythonia frees proxies from an interval timer, which must stop with the child. */
function stopBridgeLoop(): void {
  const bridge = (globalThis as any).__pythonBridge;
  bridge?.end?.();
  if (bridge?.com) bridge.com.proc = null;
}

/** Stops the Python child; Node cannot exit while it runs. */
export function shutdownPython(force = false): void {
  if (!loaded && !force) return;
  const bridge = (globalThis as any).__pythonBridge;
  bridge?.end?.();
  const proc = bridge?.com?.proc;
  if (proc) {
    proc.removeAllListeners('exit');
    proc.kill(force ? 'SIGKILL' : 'SIGTERM');
    bridge.com.proc = null;
  }
  loaded = null;
}
