// Loaded with `node --import tsx --import ./bench/support/gateway-hook.mjs` in the bench's broker
// process only: the broker's tunnel (server/tunnel/index.ts) then gets its built-in gateway from
// bench/support/gateway-process.ts, which runs the very same gateway code in a child process,
// so the bench can measure the gateway's CPU and memory apart from the broker's. The tunnel
// talks to it over the same unix socket as in production; nothing else changes.
import { register } from 'node:module';
import { isMainThread } from 'node:worker_threads';

const target = new URL('./gateway-process.ts', import.meta.url).href;

/** Module resolve hook: the tunnel's `../gateway/index.ts` becomes gateway-process.ts. */
export async function resolve(specifier, context, next) {
  if (specifier === '../gateway/index.ts' && context.parentURL?.endsWith('/server/tunnel/index.ts')) {
    return { url: target, shortCircuit: true };
  }
  return next(specifier, context);
}

if (isMainThread) register(import.meta.url);
