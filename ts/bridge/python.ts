/**
 * The one door to the Python side (pythonia), with its traps handled
 * (see ../shared/notes/node-python-bridge.md):
 *  - loaded lazily, so `lutham --help` never starts Python;
 *  - PYTHON_BIN is the project's venv (or LUTHAM_PYTHON), checked before import, since a bad
 *    interpreter crashes Node with an uncatchable spawn error;
 *  - pythonia's 100 s call timeout is lifted; instead a watchdog fails a call (or the start-up
 *    import) that reports no progress for LUTHAM_STALL_SECONDS (default 1800);
 *  - a Python child that dies, is stopped (SIGSTOP) or cannot be written to (EPIPE) at start-up
 *    or mid-call rejects with a clear error instead of hanging or crashing Node;
 *  - the child dies with the CLI: SIGINT/SIGTERM/SIGHUP here stop it first (then exit 128+n),
 *    and on its side (lutham/bridge/lifeline.py) it ignores the terminal's SIGINT and watches this
 *    process (PR_SET_PDEATHSIG + a parent-pid watchdog), so even SIGKILL here ends it;
 *  - Python exceptions (whose Error.message pythonia leaves empty) become one-line errors;
 *  - Python's stdout is pointed at stderr on the Python side, so the CLI's stdout stays clean.
 */
import type { ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { constants as osConstants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { LuthamError } from '../errors.js';
import { PY_BRIDGE_DIR, VENV_PYTHON } from '../paths.js';

export type Progress = (stage: string, fraction: number) => void;

interface Pythonia {
  python: (module: string) => Promise<any>;
}

let loaded: { pythonia: Pythonia; api: any } | null = null;
let starting: Promise<{ pythonia: Pythonia; api: any }> | null = null;
let childGone: Promise<never> | null = null;

/** How long a Python child may sit stopped (state T) before we call it gone. */
const STOPPED_SECONDS = 3;
/** After SIGTERM, how long the child gets to remove its temp files before SIGKILL. */
const TERM_GRACE_MS = 3000;

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

function bridgeCom(): { proc: ChildProcess | null; start: () => void } | undefined {
  return (globalThis as any).__pythonBridge?.com;
}

/** Linux process state letter of `pid` (R, S, D, T, Z, ...), or null when unknown. */
function processState(pid: number | undefined): string | null {
  if (!pid) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) || null;
  } catch {
    return null;
  }
}

/**
 * Watches a pending Python request: rejects `failed` when nothing was heard for
 * LUTHAM_STALL_SECONDS (`alive()` re-arms) or when the child has been stopped for a few seconds.
 */
function watchdog(proc: ChildProcess, what: string) {
  let stallTimer: NodeJS.Timeout | undefined;
  let stoppedFor = 0;
  let fail: (e: Error) => void = () => {};
  const failed = new Promise<never>((_, reject) => { fail = reject; });
  failed.catch(() => {});
  const alive = () => {
    if (stallTimer) clearTimeout(stallTimer);
    stallTimer = setTimeout(() => {
      fail(new LuthamError(`the Python side made no progress ${what} for ${stallSeconds()} s (LUTHAM_STALL_SECONDS); giving up`));
    }, stallSeconds() * 1000);
  };
  const poll = setInterval(() => {
    stoppedFor = processState(proc.pid) === 'T' ? stoppedFor + 1 : 0;
    if (stoppedFor >= STOPPED_SECONDS) fail(new LuthamError(`the Python side was stopped (SIGSTOP) ${what}; giving up`));
  }, 1000);
  poll.unref();
  alive();
  return {
    failed,
    alive,
    stop: () => {
      if (stallTimer) clearTimeout(stallTimer);
      clearInterval(poll);
    },
  };
}

async function load(): Promise<{ pythonia: Pythonia; api: any }> {
  if (loaded) return loaded;
  starting ??= start().finally(() => { starting = null; });
  return starting;
}

/** Where the Python child's C code logs during a run (runtime.capture_native_log); removed at exit. */
let nativeLog: string | null = null;

function newNativeLog(): string {
  const dir = mkdtempSync(join(tmpdir(), 'lutham-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'native.log');
}

/**
 * Why the child died, from what C code wrote before it aborted: ExecuTorch's last fatal (F) log
 * line (its failed check), else C++'s terminate ("what(): ..."), else the last error (E) line,
 * else the last line that is not an info/debug log line; '' if nothing. ExecuTorch's cpuinfo
 * probing logs at every first load ("[cpuinfo_utils.cpp:125] ..."): never the cause, as in
 * runtime.NativeLog.first_line.
 */
function nativeCause(): string {
  let text = '';
  try {
    text = nativeLog ? readFileSync(nativeLog, 'latin1') : '';
    if (nativeLog) rmSync(nativeLog, { force: true });
  } catch {
    return '';
  }
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l && !l.includes('cpuinfo_utils.cpp'));
  const logLine = /^([EWIDF]) [\d:.]+ \S+\] (.*)$/;
  const lastAt = (level: string) => {
    for (let i = lines.length - 1; i >= 0; --i) {
      const m = logLine.exec(lines[i]);
      if (m && m[1] === level) return m[2];
    }
    return '';
  };
  const fatal = lastAt('F');
  if (fatal) return fatal;
  const what = lines.findIndex((l) => /^what\(\):/.test(l));
  if (what >= 0) {
    const thrown = /terminate called after throwing an instance of '([^']+)'/.exec(lines[what - 1] ?? '');
    return `${lines[what].replace(/^what\(\):\s*/, '')}${thrown ? ` (C++ terminate: uncaught ${thrown[1]})` : ''}`;
  }
  const error = lastAt('E');
  if (error) return error;
  const plain = lines.filter((l) => !/^[ID] [\d:.]+ \S+\] /.test(l));
  return (plain[plain.length - 1] ?? '').replace(/^(?:[EWIDF] [\d:.]+ \S+\] |\[[^\]]+\] )/, '');
}

async function start(): Promise<{ pythonia: Pythonia; api: any }> {
  process.env.PYTHON_BIN = pythonInterpreter();
  process.env.REQ_TIMEOUT = String(2 ** 31 - 1); // our watchdog replaces pythonia's fixed timeout
  process.env.PYTHONPATH = [PY_BRIDGE_DIR, process.env.PYTHONPATH].filter(Boolean).join(':');
  process.env.PYTHONUNBUFFERED = '1';
  process.env.LUTHAM_PARENT_PID = String(process.pid); // bridge/lifeline.py: die when this process does
  nativeLog ??= newNativeLog();
  process.env.LUTHAM_NATIVE_LOG = nativeLog;
  const mod: any = await import('pythonia');
  const pythonia: Pythonia = mod.default ?? mod;
  const bridge = (globalThis as any).__pythonBridge;
  const com = bridgeCom()!;
  if (!com.proc) {
    // A later start in this process (after shutdownPython): pythonia spawns only at import.
    com.start();
    bridge.loop ??= setInterval(bridge.runTasks, 1000);
  }
  const proc = com.proc!;
  childGone = new Promise<never>((_, reject) => {
    const gone = (why: string) => {
      loaded = null;
      stopBridgeLoop();
      const cause = nativeCause();
      reject(new LuthamError(`the Python side exited unexpectedly (${why})${cause ? `: ${cause}` : ', leaving no message'}`));
    };
    proc.once('exit', (code: number | null, signal: string | null) => gone(signal ? `signal ${signal}` : `exit code ${code}`));
    // Writing to a child that already exited (e.g. LUTHAM_PYTHON=/bin/false) fails with EPIPE;
    // without a listener Node would crash on it. The 'exit' event follows and says why.
    proc.on('error', () => {});
    if (proc.exitCode !== null || proc.signalCode !== null) gone(proc.signalCode ? `signal ${proc.signalCode}` : `exit code ${proc.exitCode}`);
  });
  childGone.catch(() => {}); // only awaited through races below
  installSignalHandlers();
  const watch = watchdog(proc, 'while starting');
  try {
    const api = await Promise.race([pythonia.python('lutham.bridge.entry'), childGone, watch.failed]);
    loaded = { pythonia, api };
    return loaded;
  } catch (err) {
    shutdownPython(true);
    const e = pythonError(err);
    const interpreter = process.env.LUTHAM_PYTHON ? `LUTHAM_PYTHON=${process.env.PYTHON_BIN}` : process.env.PYTHON_BIN;
    throw new LuthamError(`the Python side did not start (${interpreter}): ${e.message.replace(/^the Python side /, '')}` +
      (/No module named/.test(e.message) ? `; install py_bridge/requirements.txt into that environment (npm run setup)` : ''));
  } finally {
    watch.stop();
  }
}

/** Turns a pythonia rejection into a one-line LuthamError carrying the Python exception text. */
function pythonError(err: unknown): Error {
  if (err instanceof LuthamError) return err;
  const e = err as Error;
  const text = `${e?.message ?? ''}\n${e?.stack ?? ''}`;
  // lutham/bridge/entry.py sends the whole message as JSON after this mark (pythonia keeps one line).
  const whole = /lutham-error:(\{.*\})/.exec(text);
  if (whole) {
    try {
      return new LuthamError(String(JSON.parse(whole[1]).message));
    } catch {
      // not ours after all: read it as before
    }
  }
  const lines = text.split('\n').map((l) => l.trim()).filter(Boolean);
  const js = lines.find((l) => l.startsWith('*** JS ***') || l.startsWith('🌉'));
  const pyLine = [...lines].reverse().find((l) => /^(\*\*\* JS \*\*\* )?[A-Za-z_.]*(Error|Exception|NotBuilt)\b.*:/.test(l));
  const msg = (pyLine ?? js ?? lines[0] ?? 'unknown Python error').replace(/^\*\*\* JS \*\*\* /, '').replace(/^🌉\s*/, '');
  // "lutham.run.runtime.RunError: no such file: x" -> "no such file: x"
  return new LuthamError(msg.replace(/^[A-Za-z_][\w.]*(Error|Exception|NotBuilt): /, ''));
}

/**
 * Calls `lutham.bridge.entry.<name>(json)` and returns its JSON result. `progress` receives
 * (stage, fraction in [0,1]) callbacks from Python; each one also feeds the stall watchdog.
 */
export async function callPython(name: string, args: unknown, progress?: Progress): Promise<any> {
  const { api } = await load();
  const proc = bridgeCom()?.proc;
  if (!proc) throw new LuthamError('the Python side exited unexpectedly; see the messages above');
  const watch = watchdog(proc, 'in a call');
  const onProgress = (stage: string, fraction: number) => {
    watch.alive();
    progress?.(stage, fraction);
  };
  try {
    const call = api[name](JSON.stringify(args ?? null), onProgress);
    const raw = await Promise.race([call, childGone!, watch.failed.catch((e) => { shutdownPython(true); throw e; })]);
    return JSON.parse(String(raw));
  } catch (err) {
    throw pythonError(err);
  } finally {
    watch.stop();
  }
}

/** pythonia frees proxies from an interval timer, which must stop with the child. */
function stopBridgeLoop(): void {
  const bridge = (globalThis as any).__pythonBridge;
  bridge?.end?.();
  if (bridge) bridge.loop = undefined;
  if (bridge?.com) bridge.com.proc = null;
}

// ------------------------------------------------------------------ signals

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
let interrupting = false;

function onSignal(signal: NodeJS.Signals): void {
  if (interrupting) return;
  interrupting = true;
  const code = 128 + (osConstants.signals[signal] ?? 2);
  // Start on a fresh line when a progress bar is drawn on the terminal.
  process.stderr.write(`${process.stderr.isTTY ? '\n' : ''}lutham: interrupted (${signal})\n`);
  const proc = bridgeCom()?.proc;
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) process.exit(code);
  // SIGTERM lets the child remove its temp files; SIGKILL if it does not end in time.
  proc.removeAllListeners('exit');
  proc.once('exit', () => process.exit(code));
  proc.kill('SIGTERM');
  setTimeout(() => { proc.kill('SIGKILL'); process.exit(code); }, TERM_GRACE_MS).unref();
}

function installSignalHandlers(): void {
  for (const s of SIGNALS) if (!process.listeners(s).includes(onSignal)) process.on(s, onSignal);
}

function removeSignalHandlers(): void {
  for (const s of SIGNALS) process.off(s, onSignal);
}

/** Stops the Python child; Node cannot exit while it runs. */
export function shutdownPython(force = false): void {
  if (!loaded && !force) return;
  const bridge = (globalThis as any).__pythonBridge;
  bridge?.end?.();
  if (bridge) bridge.loop = undefined;
  const proc = bridge?.com?.proc;
  if (proc) {
    proc.removeAllListeners('exit');
    proc.kill(force ? 'SIGKILL' : 'SIGTERM');
    bridge.com.proc = null;
  }
  loaded = null;
  if (!interrupting) removeSignalHandlers();
}
