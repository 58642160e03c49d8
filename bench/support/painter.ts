// Launcher for bench/support/painter.c, a native X client that paints an X server (Xvnc) with
// real content at a steady rate: anti-aliased text (Xft, DejaVu fonts), photo-like frames, or
// a photo region inside a text page. Used by bench/stream.bench.ts and gateway tests.
//
//   const bin = await buildPainter();            // compiles once per source version (cached in tmpdir)
//   const p = await startPainter({ display: 42, mode: 'text', fps: 30 });
//   ...                                          // the screen changes `fps` times a second
//   p.frames();                                  // frames painted so far (reported every second)
//   await p.stop();                              // SIGTERM by pid, SIGKILL after 3 s
//
//   // A still screen, and the exact pixels the X server holds (RGBA, width*height*4):
//   const still = await startPainter({ display: 42, mode: 'text', fps: 0, dump: true });
//   still.pixels!  // Buffer, read back with XGetImage once the frame is painted
//
// Needs cc and the Debian packages libx11-dev libxft-dev fonts-dejavu-core (hasPainterDeps()).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const SOURCE = fileURLToPath(new URL('./painter.c', import.meta.url));

export type PainterMode = 'text' | 'photo' | 'mixed';

export type PainterOptions = {
  /** X display number (Xvnc :N). */
  display: number;
  mode: PainterMode;
  /** Frames per second; 0 = paint one frame and keep still. */
  fps: number;
  /** Seed of the text page and texture (same seed, same pixels). */
  seed?: number;
  /** With fps 0: read the painted screen back from the X server (Painter.pixels). */
  dump?: boolean;
};

export type Painter = {
  pid: number;
  width: number;
  height: number;
  /** Frames painted so far, as last reported by the painter (once a second). */
  frames(): number;
  /** With `dump`: the screen as the X server holds it, RGBA. */
  pixels?: Buffer;
  stop(): Promise<void>;
};

/** True if the painter can be built here (cc, Xlib/Xft headers, DejaVu fonts). */
export function hasPainterDeps(): boolean {
  return (
    existsSync('/usr/bin/cc') &&
    existsSync('/usr/include/X11/Xlib.h') &&
    existsSync('/usr/include/X11/Xft/Xft.h') &&
    existsSync('/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf')
  );
}

let built: Promise<string> | undefined;

/** Compiles painter.c into a temp directory keyed by the source's hash; returns the binary's path. */
export function buildPainter(): Promise<string> {
  built ??= (async () => {
    const src = readFileSync(SOURCE);
    const hash = createHash('sha256').update(src).digest('hex').slice(0, 16);
    const dir = path.join(tmpdir(), `vdi-painter-${hash}`);
    const bin = path.join(dir, 'painter');
    if (existsSync(bin)) return bin;
    mkdirSync(dir, { recursive: true });
    // Build to a unique name and rename: concurrent builders never see a half-written binary.
    const tmp = `${bin}.${process.pid}`;
    try {
      await run('cc', ['-O2', '-o', tmp, SOURCE, '-I/usr/include/freetype2', '-lXft', '-lX11', '-lm'], { timeout: 60_000 });
      renameSync(tmp, bin);
    } catch (e) {
      rmSync(tmp, { force: true });
      throw new Error(`could not build the painter (needs cc, libx11-dev, libxft-dev): ${(e as Error).message}`);
    }
    return bin;
  })();
  built.catch(() => (built = undefined));
  return built;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || !child.pid) return;
  const exited = new Promise((r) => child.once('exit', r));
  process.kill(child.pid, 'SIGTERM');
  await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
  if (child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
}

/** Starts the painter on `display`; resolves once its first frame is on the X server. */
export async function startPainter(o: PainterOptions): Promise<Painter> {
  const bin = await buildPainter();
  const dumpFile = o.dump ? path.join(tmpdir(), `vdi-painter-dump-${process.pid}-${Date.now()}.rgba`) : undefined;
  const args = ['--mode', o.mode, '--fps', String(o.fps), '--seed', String(o.seed ?? 1)];
  if (dumpFile) args.push('--dump', dumpFile);
  const child = spawn(bin, args, { env: { ...process.env, DISPLAY: `:${o.display}` }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let frames = 0;
  let width = 0;
  let height = 0;
  let dumped = false;
  const waiters = new Set<() => void>();
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    let nl: number;
    while ((nl = out.indexOf('\n')) >= 0) {
      const line = out.slice(0, nl);
      out = out.slice(nl + 1);
      const ready = /^ready (\d+)x(\d+)$/.exec(line);
      if (ready) [width, height, frames] = [Number(ready[1]), Number(ready[2]), 1];
      const f = /^frames (\d+)$/.exec(line);
      if (f) frames = Number(f[1]);
      if (line === 'dumped') dumped = true;
    }
    for (const w of waiters) w();
  });
  child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-2000)));
  child.on('exit', () => {
    for (const w of waiters) w();
  });
  const stop = async () => {
    await stopChild(child);
    if (dumpFile) rmSync(dumpFile, { force: true });
  };
  try {
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => done(new Error(`painter did not start within 15 s: ${err}`)), 15_000);
      const check = () => {
        if (child.exitCode !== null || child.signalCode !== null) done(new Error(`painter exited (${child.exitCode ?? child.signalCode}): ${err}`));
        else if (width > 0 && (!dumpFile || dumped)) done();
      };
      const done = (e?: Error) => {
        clearTimeout(t);
        waiters.delete(check);
        if (e) reject(e);
        else resolve();
      };
      waiters.add(check);
    });
  } catch (e) {
    await stop();
    throw e;
  }
  const painter: Painter = { pid: child.pid!, width, height, frames: () => frames, stop };
  if (dumpFile) painter.pixels = readFileSync(dumpFile);
  return painter;
}
