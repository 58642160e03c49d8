/**
 * The V8 flags the broker's node process runs with, wherever it is started (`npm start`, the
 * quick start, the image's entrypoint, the systemd unit, the tests' and benches' broker
 * processes; test/unit/node-flags.test.ts keeps them the same).
 *
 * --no-allocation-site-pretenuring: when saturated (hundreds of requests in flight) most of a
 * request's objects outlive a scavenge, and V8 then allocates them straight into the old
 * generation from their allocation sites on; at ordinary load that made every request's
 * objects old (about 30 KB per desktop request and logoff) and every scavenge walk their
 * pointers (9–11 ms each at 250 requests/s). Without it: 1.3–1.9 ms scavenges, 12 % less CPU
 * per assignment at 250/s, 19 % at 700/s, 4 % saturated (bench:assign, docs/benchmarks.md).
 *
 * --max-semi-space-size=32 (MiB; V8's default here is 16): at 2,000 assignments/s (open loop)
 * the default young generation was scavenged 113 times in 5 s, 287 ms in all, up to 15 ms
 * each; with 32, 50 times, 52 ms, at most 3.7 ms (each scavenge copies what is live at that
 * moment, and fewer survive long enough to be copied twice and promoted). p99 at 2,000/s:
 * 11 ms against 26 ms (medians of runs taken in turn), CPU per assignment 7 % lower, 20 %
 * lower saturated; 64 did no better at the tail. The broker's RSS under that load was lower, not
 * higher (240–258 against 286–290 MB): less is promoted to the old generation.
 */
export const BROKER_NODE_FLAGS: readonly string[] = ['--no-allocation-site-pretenuring', '--max-semi-space-size=32'];
